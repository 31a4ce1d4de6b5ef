"""Runs side by side: one table per QP and overall, and BD-rate against kMAC/px.

In-loop filter proposals are judged by their BD-rate against their complexity (JVET's NN
exploration compares kMAC per pixel), so a comparison is only meaningful on the same coded
data: runs evaluated on different data are refused unless the caller allows it. The data is
identified by what was measured (sequences, QPs, frames, bitstream sizes, the anchor's
PSNR), not by file paths, so a corpus moved to another disk still compares.

    compare(["runs/imdn", "runs/lop/heldout"], "cmp")   # → cmp/compare.{md,json,png}
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from codecnn.errors import DataError


def find_report(path: str | Path) -> Path:
    """report.json for a report file, a report directory, or a training run holding exactly
    one report (its `codecnn eval` output inside RUN). DataError naming the path otherwise."""
    p = Path(path)
    if p.is_file() and p.name.endswith(".json"):
        return p
    if (p / "report.json").is_file():
        return p / "report.json"
    if (p / "config.json").is_file():
        found = sorted(p.glob("*/report.json")) + sorted(p.glob("*/*/report.json"))
        if len(found) == 1:
            return found[0]
        if found:
            raise DataError(f"{p}: holds {len(found)} evaluation reports "
                            f"({', '.join(str(f.parent) for f in found[:3])}); name one")
        raise DataError(f"{p}: a training run without an evaluation report (run codecnn eval "
                        f"--model {p}/best.pt ... -o {p}/eval first)")
    raise DataError(f"{p}: neither an evaluation report nor a training run")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(out, dict):
        raise DataError(f"{path}: not a codecnn report")
    return out


def cumulative_elapsed(rows: list[dict[str, Any]]) -> list[float]:
    """Training time of each row of a run's train.csv/monitor.csv, counted from the run's
    start: `elapsed_s` restarts at every resume, so where it falls the time before is added.
    Rows without a number count as the time before them."""
    out: list[float] = []
    offset = last = 0.0
    for r in rows:
        try:
            t = float(r["elapsed_s"])
        except (KeyError, TypeError, ValueError):
            out.append(offset + last)
            continue
        if t < last:
            offset += last
        last = t
        out.append(offset + t)
    return out


def wall_seconds(run: Path) -> float | None:
    """Training wall time of a run from RUN/train.csv (every resumed stretch summed)."""
    path = run / "train.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        times = cumulative_elapsed(list(csv.DictReader(f)))
    return times[-1] if times else 0.0


def data_key(report: dict[str, Any]) -> list:
    """What a report was measured on, as comparable plain values."""
    if report.get("kind") == "manifests":
        return sorted([r["source"], r["qp"], r["frames"], r.get("bitstream_bits"),
                       round(float(r["psnr_rec"]), 4)] for r in report["results"])
    return sorted([r["qp"], r["sequences"], r.get("patches"), round(float(r["psnr_rec"]), 4)]
                  for r in report["summary"]["per_qp"])


def describe_data(report: dict[str, Any]) -> str:
    """A short line saying what a report was evaluated on."""
    if report.get("kind") == "manifests":
        seqs = sorted({r["source"] for r in report["results"]})
        qps = sorted({r["qp"] for r in report["results"]})
        frames = sum(r["frames"] for r in report["results"])
        return (f"{len(seqs)} sequence(s) ({', '.join(seqs)}) at QP {','.join(map(str, qps))}, "
                f"{frames} pictures")
    n = len(report.get("shards", []))
    patches = sum(r.get("patches") or 0 for r in report["summary"]["per_qp"])
    return f"{n} shard(s), {patches} patches"


def load_entry(path: str | Path) -> dict[str, Any]:
    """One row of the comparison from a run or a report (see find_report)."""
    report_path = find_report(path)
    report = _read_json(report_path)
    if "model" not in report or "summary" not in report:
        raise DataError(f"{report_path}: not a codecnn evaluation report")
    model = report["model"]
    run = Path(model.get("checkpoint") or "").parent
    run_cfg = _read_json(run / "config.json") if (run / "config.json").is_file() else {}
    given = Path(path)
    if (given / "config.json").is_file():
        label = given.name
    elif run_cfg:
        label = run.name
    else:
        label = report_path.parent.name
    s = report["summary"]
    o = s.get("overall", {})
    train = (model.get("data") or {}).get("train") or {}
    config = {k: v for k, v in (model.get("config") or {}).items() if k not in ("planes",)}
    per_qp = [{"qp": r["qp"], "gain": r.get("gain"), "switch_gain": r.get("switch_gain"),
               "psnr_rec": r.get("psnr_rec"), "psnr_filt": r.get("psnr_filt"),
               "share_on": r.get("share_on")} for r in s.get("per_qp", [])]
    gains = [r["gain"] for r in per_qp if r["gain"] is not None]
    return {
        "label": label, "family": model.get("name"),
        "configuration": ", ".join(f"{k}={v}" for k, v in config.items()),
        "config": model.get("config"), "planes": model.get("planes"),
        "kmac_per_pixel": model.get("kmac_per_pixel"), "params": model.get("params"),
        "per_qp": per_qp,
        "gain": o.get("gain", sum(gains) / len(gains) if gains else None),
        "bd_rate": o.get("bd_rate_pchip"), "switch": report.get("switch"),
        "switch_bd_rate": o.get("switch_bd_rate_pchip"),
        "step": model.get("step"),
        "steps": (run_cfg.get("train_config") or {}).get("steps"),
        "wall_s": wall_seconds(run) if run_cfg else None,
        "train_data": (f"{len(train.get('sequences') or [])} seq, {train.get('patches')} "
                       f"patches") if train else "–",
        "eval_data": describe_data(report), "data_key": data_key(report),
        "kind": report.get("kind"), "report": str(report_path.resolve()),
        "run": str(run.resolve()) if run_cfg else None,
    }


def check_same_data(entries: list[dict[str, Any]]) -> bool:
    """True when every entry was evaluated on the same data; else DataError naming two."""
    first = entries[0]
    for e in entries[1:]:
        if e["data_key"] != first["data_key"]:
            raise DataError(f"{e['report']}: evaluated on other data than {first['report']} "
                            f"({e['eval_data']} vs {first['eval_data']}); pass "
                            f"--allow-different-data to compare anyway")
    return True


def pareto(entries: list[dict[str, Any]], metric: str, lower_is_better: bool) -> list[bool]:
    """For each entry: no other entry is at most as complex and at least as good, and
    strictly better in one of the two."""
    def better(a: float, b: float) -> bool:
        return a < b if lower_is_better else a > b

    out = []
    for e in entries:
        x, y = e["kmac_per_pixel"], e[metric]
        if x is None or y is None:
            out.append(False)
            continue
        dominated = any(
            o is not e and o["kmac_per_pixel"] is not None and o[metric] is not None
            and o["kmac_per_pixel"] <= x and (o[metric] == y or better(o[metric], y))
            and (o["kmac_per_pixel"] < x or better(o[metric], y))
            for o in entries)
        out.append(not dominated)
    return out


def compare_entries(entries: list[dict[str, Any]],
                    allow_different_data: bool = False) -> dict[str, Any]:
    """The comparison record: entries with Pareto flags, the metric, the best entry."""
    if not entries:
        raise DataError("nothing to compare")
    seen: dict[str, int] = {}
    for e in entries:  # two runs both named "run" stay apart in the table and the plot
        seen[e["label"]] = seen.get(e["label"], 0) + 1
        if seen[e["label"]] > 1:
            e["label"] = f"{e['label']}#{seen[e['label']]}"
    same = True
    if allow_different_data:
        same = all(e["data_key"] == entries[0]["data_key"] for e in entries)
    else:
        check_same_data(entries)
    if all(e["bd_rate"] is not None for e in entries):
        metric, label, lower = "bd_rate", "BD-rate always on (%)", True
    else:
        metric, label, lower = "gain", "mean PSNR-Y gain (dB)", False
    front = pareto(entries, metric, lower)
    for e, f in zip(entries, front, strict=True):
        e["pareto"] = f
    scored = [e for e in entries if e[metric] is not None]
    best = (min if lower else max)(scored, key=lambda e: e[metric]) if scored else None
    qps = sorted({r["qp"] for e in entries for r in e["per_qp"]})
    return {"entries": entries, "qps": qps, "metric": metric, "metric_label": label,
            "lower_is_better": lower, "same_data": same,
            "best": None if best is None else best["label"],
            "eval_data": entries[0]["eval_data"]}


def _f(x: Any, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _wall(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def overall_table(c: dict[str, Any]) -> str:
    """Markdown: one row per run, per-QP gains as columns, Pareto-front runs marked ★."""
    qps = c["qps"]
    head = ("| run | family | configuration | kMAC/px | params | "
            + " | ".join(f"QP{q} gain (dB)" for q in qps)
            + " | mean gain (dB) | BD-rate on (%) | BD-rate CTU switch (%) | steps | wall | "
              "training data |")
    lines = [head, "|---|---|---|---:|---:|" + "---:|" * len(qps) + "---:|---:|---:|---:|---:|---|"]
    for e in c["entries"]:
        by_qp = {r["qp"]: r for r in e["per_qp"]}
        steps = f"{e['step']}" + (f"/{e['steps']}" if e["steps"] else "")
        lines.append(
            f"| {e['label']}{' ★' if e.get('pareto') else ''} | {e['family']} | "
            f"{e['configuration']} | {_f(e['kmac_per_pixel'], '.1f')} | "
            f"{_f(e['params'], ',')} | "
            + " | ".join(_f(by_qp.get(q, {}).get("gain"), "+.4f") for q in qps)
            + f" | {_f(e['gain'], '+.4f')} | {_f(e['bd_rate'], '+.2f')} | "
              f"{_f(e['switch_bd_rate'], '+.2f')} | {steps} | {_wall(e['wall_s'])} | "
              f"{e['train_data']} |")
    return "\n".join(lines)


def qp_table(c: dict[str, Any], qp: int) -> str:
    """Markdown: the runs at one QP."""
    lines = ["| run | family | kMAC/px | PSNR-Y anchor | PSNR-Y filtered | gain (dB) | "
             "gain CTU switch (dB) | CTUs on (%) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for e in c["entries"]:
        r = next((r for r in e["per_qp"] if r["qp"] == qp), {})
        on = r.get("share_on")
        lines.append(f"| {e['label']} | {e['family']} | {_f(e['kmac_per_pixel'], '.1f')} | "
                     f"{_f(r.get('psnr_rec'), '.3f')} | {_f(r.get('psnr_filt'), '.3f')} | "
                     f"{_f(r.get('gain'), '+.4f')} | {_f(r.get('switch_gain'), '+.4f')} | "
                     f"{_f(None if on is None else 100 * on, '.1f')} |")
    return "\n".join(lines)


def best_line(c: dict[str, Any]) -> str:
    if c["best"] is None:
        return "best: none (no run has the metric)"
    e = next(e for e in c["entries"] if e["label"] == c["best"])
    unit = "%" if c["metric"] == "bd_rate" else "dB"
    return (f"best on {c['metric_label'].split(' (')[0]}: {e['label']} ({e['family']}) "
            f"{e[c['metric']]:+.{2 if unit == '%' else 4}f} {unit} at "
            f"{e['kmac_per_pixel']:.1f} kMAC/px")


def markdown(c: dict[str, Any]) -> str:
    lines = ["# codecnn comparison", "",
             f"Evaluated on: {c['eval_data']}." if c["same_data"] else
             "**The runs were evaluated on different data** (--allow-different-data): "
             "their numbers are not comparable as they stand.", "",
             f"★ = on the Pareto front of {c['metric_label']} against kMAC/px. "
             "BD-rate: Bjøntegaard (PCHIP) against the unfiltered reconstruction (the codec's "
             "own anchor), averaged over sequences; "
             "the CTU-switch column needs `codecnn eval --switch ctu`.", "",
             best_line(c), "", "## Overall", "", overall_table(c), ""]
    for q in c["qps"]:
        lines += [f"## QP {q}", "", qp_table(c, q), ""]
    lines += ["![BD-rate against complexity](compare.png)", "", "## Sources", ""]
    lines += [f"- {e['label']}: `{e['report']}`" for e in c["entries"]]
    return "\n".join(lines) + "\n"


def plot(c: dict[str, Any], path: Path) -> None:
    """PNG: the metric against kMAC/px, one point per run, the Pareto front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from codecnn.io.atomic import save_figure_atomic

    m = c["metric"]
    pts = [e for e in c["entries"] if e["kmac_per_pixel"] is not None and e[m] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for on, color, name in ((True, "C1", "on the Pareto front"), (False, "C0", "dominated")):
        group = [e for e in pts if bool(e["pareto"]) == on]
        if group:
            ax.plot([e["kmac_per_pixel"] for e in group], [e[m] for e in group], "o", ms=8,
                    color=color, zorder=3, label=name)
    for e in pts:
        ax.annotate(f"{e['label']} ({e['family']})", (e["kmac_per_pixel"], e[m]), fontsize=8,
                    textcoords="offset points", xytext=(6, 4))
    if m == "bd_rate":
        sw = [e for e in pts if e["switch_bd_rate"] is not None]
        if sw:
            ax.plot([e["kmac_per_pixel"] for e in sw], [e["switch_bd_rate"] for e in sw],
                    "^", mfc="none", color="C2", label="with CTU switching")
    front = sorted((e for e in pts if e["pareto"]), key=lambda e: e["kmac_per_pixel"])
    if front:
        ax.step([e["kmac_per_pixel"] for e in front], [e[m] for e in front], "-",
                where="post", color="C1", lw=1.5, zorder=2)
    xs = [e["kmac_per_pixel"] for e in pts]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    if m == "bd_rate":
        ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("complexity (kMAC per pixel)")
    ax.set_ylabel(c["metric_label"] + (" — lower is better" if c["lower_is_better"] else
                                       " — higher is better"))
    ax.set_title("In-loop filters: quality against complexity", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.margins(x=0.2, y=0.15)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)


def compare(paths: list[str | Path], out_dir: str | Path, overwrite: bool = False,
            allow_different_data: bool = False) -> dict[str, Any]:
    """Compare runs/reports; writes OUT/compare.md, compare.json and compare.png (the
    directory atomically; an existing one only with overwrite). Returns the record."""
    from codecnn.io.atomic import atomic_dir

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (use --overwrite to replace it)")
    c = compare_entries([load_entry(p) for p in paths], allow_different_data)

    def write(d: Path) -> None:
        plot(c, d / "compare.png")
        (d / "compare.md").write_text(markdown(c))
        (d / "compare.json").write_text(json.dumps(c, indent=1) + "\n")

    atomic_dir(out, write, overwrite)
    c["out_dir"] = str(out)
    return c
