"""What deployment costs: the per-QP gain (and, on coded sequences, BD-rate) of the float
model next to its ONNX, int8 and int16 versions, all on the same data.

Each variant is scored by the evaluate stage itself (`evaluate_data` on shards,
`evaluate_manifests` on coded sequences) from its deployed file, exactly as `codecnn eval
--model FILE` would score it; each full report lands in its own subdirectory, and
export.json / export.md put the numbers side by side with the loss against the float model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codecnn.errors import DataError
from codecnn.evaluate.bd import format_bd_rate

VARIANTS = ("float", "onnx", "int8", "int16")
LABELS = {"float": "float (PyTorch)", "onnx": "ONNX fp32 (onnxruntime)",
          "int8": "int8 QDQ (onnxruntime)", "int16": "int16 fixed point (exact integer)"}


def data_kind(paths: list[str | os.PathLike]) -> str:
    """"shards" (.h5 files or directories of them) or "manifests" (manifest.json files or
    directories holding them); DataError for anything else or a mix."""
    kinds = set()
    for p in map(Path, paths):
        if p.is_file():
            kinds.add("manifests" if p.suffix == ".json" else "shards")
        elif p.is_dir():
            if any(q.suffix in (".h5", ".hdf5") for q in p.iterdir()):
                kinds.add("shards")
            elif next(p.rglob("manifest.json"), None) is not None:
                kinds.add("manifests")
            else:
                raise DataError(f"{p}: holds neither .h5 shards nor manifest.json files")
        else:
            raise DataError(f"{p}: no such file or directory")
    if len(kinds) != 1:
        raise DataError("--measure takes shards or manifests, not both")
    return kinds.pop()


def measure_variants(files: dict[str, str | os.PathLike], data: list[str | os.PathLike],
                     out_dir: str | os.PathLike, export: dict[str, Any] | None = None,
                     device: str | None = None, batch: int = 8, overwrite: bool = False,
                     command: list[str] | None = None, progress: bool = True
                     ) -> dict[str, Any]:
    """Score each variant in `files` ({"float": ckpt, "onnx": path, ...}) on `data` and write
    out_dir/<variant>/report.* plus out_dir/export.json and export.md. Returns the summary."""
    from codecnn.evaluate import evaluate_data, evaluate_manifests
    from codecnn.evaluate.model_io import json_plain
    from codecnn.io.atomic import atomic_dir

    kind = data_kind(data)
    summary: dict[str, Any] = {}

    def write(d: Path) -> None:
        reports = {}
        for name in VARIANTS:
            if name not in files:
                continue
            if progress:
                import sys

                from tqdm import tqdm

                tqdm.write(f"measuring {LABELS[name]}: {files[name]}", file=sys.stderr)
            # Float and int16 may use a GPU; onnxruntime runs on the CPU whatever is asked.
            dev = device if name in ("float", "int16") else "cpu"
            if kind == "shards":
                rep = evaluate_data(files[name], list(data), d / name, device=dev,
                                    batch=batch, command=command, progress=progress)
            else:
                rep = evaluate_manifests(files[name], list(data), d / name, device=dev,
                                         batch=batch, command=command, progress=progress)
            reports[name] = rep
        summary.update(compare(reports, kind))
        summary["export"] = json_plain(export)
        summary["command"] = command
        summary["data"] = [str(Path(p).resolve()) for p in data]
        (d / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
        (d / "export.md").write_text(markdown(summary))

    atomic_dir(out_dir, write, overwrite)
    summary["out_dir"] = str(out_dir)
    return summary


def compare(reports: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    """Per QP: each variant's gain and its loss against the float model; overall BD-rate."""
    base = {r["qp"]: r for r in reports["float"]["summary"]["per_qp"]}
    rows = []
    for qp in sorted(base):
        row: dict[str, Any] = {"qp": qp, "psnr_rec": base[qp]["psnr_rec"]}
        for name, rep in reports.items():
            mine = {r["qp"]: r for r in rep["summary"]["per_qp"]}[qp]
            row[name] = {"gain": mine["gain"], "loss": base[qp]["gain"] - mine["gain"]}
        rows.append(row)
    overall: dict[str, Any] = {}
    for name, rep in reports.items():
        o = rep["summary"]["overall"]
        overall[name] = {"gain": o["gain"],
                         "bd_rate_pchip": o.get("bd_rate_pchip"),
                         "bd_psnr_pchip": o.get("bd_psnr_pchip")}
    worst = {name: max(abs(r[name]["loss"]) for r in rows) for name in reports}
    return {"kind": kind, "variants": list(reports), "per_qp": rows, "overall": overall,
            "max_abs_loss_db": worst}


def table(summary: dict[str, Any]) -> str:
    """The per-QP comparison as plain text: gain of each variant, (loss vs float)."""
    names = summary["variants"]
    head = f"{'QP':>4} " + " ".join(f"{n:>18}" for n in names)
    out = [f"{'':>4} " + " ".join(f"{'gain dB (loss)':>18}" for _ in names), head]
    for r in summary["per_qp"]:
        cells = []
        for n in names:
            g, loss = r[n]["gain"], r[n]["loss"]
            cells.append(f"{g:+.4f}" if n == "float" else f"{g:+.4f} ({loss:+.4f})")
        out.append(f"{r['qp']:>4} " + " ".join(f"{c:>18}" for c in cells))
    o = summary["overall"]
    if any(o[n].get("bd_rate_pchip") is not None for n in names):
        out.append("BD-rate " + " ".join(f"{format_bd_rate(o[n]['bd_rate_pchip']):>18}"
                                         for n in names))
    return "\n".join(out)


def markdown(summary: dict[str, Any]) -> str:
    names = summary["variants"]
    lines = ["# Deployment: gain kept by each exported version", "",
             f"Data ({summary['kind']}): " + ", ".join(f"`{p}`" for p in summary["data"]), "",
             f"Command: `{' '.join(summary['command'] or [])}`", "",
             "Per-QP PSNR-Y gain (dB); in brackets the loss against the float model "
             "(positive = gain lost).", "",
             "| QP | " + " | ".join(LABELS[n] for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    for r in summary["per_qp"]:
        cells = [f"{r[n]['gain']:+.4f}" + ("" if n == "float" else f" ({r[n]['loss']:+.4f})")
                 for n in names]
        lines.append(f"| {r['qp']} | " + " | ".join(cells) + " |")
    o = summary["overall"]
    lines.append("| mean | " + " | ".join(f"{o[n]['gain']:+.4f}" for n in names) + " |")
    if any(o[n].get("bd_rate_pchip") is not None for n in names):
        lines.append("| BD-rate (PCHIP) | " + " | ".join(format_bd_rate(o[n]["bd_rate_pchip"])
                                                      for n in names) + " |")
    else:
        lines += ["", "Shards carry no bitrate: BD-rate needs coded sequences "
                      "(`--measure` with manifests)."]
    exp = summary.get("export") or {}
    if exp.get("check"):
        c = exp["check"]
        lines += ["", f"ONNX vs PyTorch on {c['patches']} real CTUs: max |diff| "
                      f"{c['max_abs_diff']:.2e} of the peak."]
    if exp.get("int16"):
        i = exp["int16"]
        lines += [f"int16: accumulators need {i['accumulator_bits']} bits on the calibration "
                  f"CTUs; headroom {i['headroom']}×; calibrated on "
                  f"{i['calibration_patches']} CTUs."]
    lines += ["", "Each variant's full report is in its subdirectory."]
    return "\n".join(lines) + "\n"


