"""From per-(sequence, QP) results to the numbers people compare: gain per QP, BD-rate per
sequence and their averages (JVET averages BD-rates over sequences)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from codecnn.evaluate.bd import bd_psnr, bd_rate
from codecnn.io.metrics import mean_of, mean_per_qp

# Four rate points as in the JVET common test conditions, for either interpolation: with fewer,
# a sequence gets no BD numbers (and a note) rather than a number computed differently.
MIN_POINTS = {"pchip": 4, "cubic": 4}


def _bd(points: list[dict], test_rate: str, test_psnr: str, method: str) -> dict[str, Any]:
    if len(points) < MIN_POINTS[method]:
        return {"bd_rate": None, "bd_psnr": None,
                "note": f"{len(points)} QPs; {method} needs {MIN_POINTS[method]}"}
    ra = [p["bitrate_kbps"] for p in points]
    pa = [p["psnr_rec"] for p in points]
    rt = [_get(p, test_rate) for p in points]
    pt = [_get(p, test_psnr) for p in points]
    try:
        return {"bd_rate": _num(bd_rate(ra, pa, rt, pt, method)),
                "bd_psnr": _num(bd_psnr(ra, pa, rt, pt, method))}
    except ValueError as e:
        return {"bd_rate": None, "bd_psnr": None, "note": str(e)}


def _get(d: dict, dotted: str) -> float:
    for part in dotted.split("."):
        d = d[part]
    return d


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def summarise(results: list[dict[str, Any]], switch: str | None,
              methods: tuple[str, ...] = ("pchip", "cubic")) -> dict[str, Any]:
    """Per-sequence BD numbers, per-QP averages and overall averages of evaluate_sequence rows.

    The per-QP rows are the scorer's sequence → QP step (codecnn.io.metrics.mean_per_qp) over
    each sequence's per-picture means.

    The always-on filter keeps the anchor's bitrate (nothing is signalled); the switched one
    pays its flag bits.
    """
    by_seq: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_seq[r["source"]].append(r)
    sequences = {}
    for source, pts in sorted(by_seq.items()):
        pts = sorted(pts, key=lambda p: p["qp"])
        entry: dict[str, Any] = {"qps": [p["qp"] for p in pts], "filtered": {}, "switched": {}}
        for m in methods:
            entry["filtered"][m] = _bd(pts, "bitrate_kbps", "psnr_filt", m)
            if switch:
                entry["switched"][m] = _bd(pts, "switch.bitrate_kbps", "switch.psnr", m)
        entry["gain"] = mean_of([p["gain"] for p in pts])
        if switch:
            entry["switch_gain"] = mean_of([p["switch"]["gain"] for p in pts])
        sequences[source] = entry
    per_qp = mean_per_qp(results, ("bitrate_kbps", "psnr_rec", "psnr_filt", "gain"))
    if switch:
        for row in per_qp:
            rows = [r for r in results if r["qp"] == row["qp"]]
            row["switch_psnr"] = mean_of([r["switch"]["psnr"] for r in rows])
            row["switch_gain"] = mean_of([r["switch"]["gain"] for r in rows])
            on = sum(r["switch"]["on"] for r in rows)
            total = sum(r["switch"]["total"] for r in rows)
            row["share_on"] = on / total if total else 0.0
    overall: dict[str, Any] = {"gain": mean_of([r["gain"] for r in per_qp])}
    # BD averages run over the sequences that have BD numbers; say which, so averages of
    # different sequence sets are never presented side by side without a word.
    with_bd = [name for name, s in sequences.items()
               if s["filtered"][methods[0]]["bd_rate"] is not None]
    overall["bd_sequences"] = with_bd
    overall["bd_excluded"] = sorted(set(sequences) - set(with_bd))
    for m in methods:
        overall[f"bd_rate_{m}"] = mean_of([s["filtered"][m]["bd_rate"] for s in sequences.values()])
        overall[f"bd_psnr_{m}"] = mean_of([s["filtered"][m]["bd_psnr"] for s in sequences.values()])
        if switch:
            overall[f"switch_bd_rate_{m}"] = mean_of(
                [s["switched"][m]["bd_rate"] for s in sequences.values()])
            overall[f"switch_bd_psnr_{m}"] = mean_of(
                [s["switched"][m]["bd_psnr"] for s in sequences.values()])
    if switch:
        overall["switch_gain"] = mean_of([r["switch_gain"] for r in per_qp])
        on = sum(r["switch"]["on"] for r in results)
        total = sum(r["switch"]["total"] for r in results)
        overall["share_on"] = on / total if total else 0.0
    return {"sequences": sequences, "per_qp": per_qp, "overall": overall}
