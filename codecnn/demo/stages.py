"""The demo's stages after encoding: each calls one library function and says what it made.

Library code returns numbers and never prints; these stages turn them into the lines the demo
shows, through `echo` (print by default; `run_demo` passes its own).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

Echo = Callable[[str], Any]


def run_extract_stage(manifests: list[str | os.PathLike], out_dir: str | os.PathLike,
                      jobs: int = 1, echo: Echo = print) -> dict[str, Any]:
    """Every manifest → a shard in `out_dir`; says the patches per QP and returns

    {"shards": [paths], "patches": N, "patches_per_qp": {qp: n}, "skipped": k, "seconds": s}.
    """
    from codecnn.extract import ExtractOptions, extract_manifests

    t0 = time.perf_counter()
    results = extract_manifests(manifests, out_dir, ExtractOptions(), jobs=jobs)
    per_qp: Counter[int] = Counter()
    for r in results:
        per_qp[int(r["nominal_qp"])] += int(r["patches"])
    summary = {
        "shards": [r["path"] for r in results],
        "patches": sum(per_qp.values()),
        "patches_per_qp": dict(sorted(per_qp.items())),
        "skipped": sum(bool(r.get("skipped")) for r in results),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    echo(f"extract: {len(results)} shards, {summary['patches']} patches in {out_dir}")
    for qp, n in summary["patches_per_qp"].items():
        echo(f"  QP {qp}: {n} patches")
    return summary


def run_train_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    steps: int = 100, preset: str = "rdn-s", batch_size: int = 8,
                    seed: int = 0, val_every: int | None = None,
                    model_overrides: dict[str, Any] | None = None,
                    overwrite: bool = True, device: str = "cpu",
                    echo: Echo = print) -> dict[str, Any]:
    """Train `preset` for `steps` on the shards in `shard_dir`, writing the run to `out_dir`.

    The default (rdn-s reduced to 16 maps, 2 RDBs × 4 layers, g=8, batch 8, 100 steps, about
    5-8 patches/s) takes 2-3 minutes on 2 busy CPU cores. Says and returns the validation
    PSNR-Y gain per QP it reached, however small (a hundred steps are far from the days a real
    model trains).
    Returns train_model's summary plus "checkpoint" (best.pt, or last.pt if there is none).
    """
    from codecnn.train import TrainConfig, train_model
    from codecnn.train.command import train_command

    if model_overrides is None:
        model_overrides = {"features": 16, "blocks": 2, "layers": 4, "growth": 8}
    config = TrainConfig(data=(str(shard_dir),), preset=preset, model_overrides=model_overrides,
                         steps=steps, batch_size=batch_size, seed=seed, lr=1e-3,
                         warmup=max(1, steps // 10), val_every=val_every or steps,
                         log_every=max(1, steps // 30), workers=0, device=device)
    summary = train_model(config, out_dir, overwrite=overwrite,
                          command=train_command(config, str(out_dir)))
    best = Path(out_dir) / "best.pt"
    summary["checkpoint"] = str(best if best.is_file() else Path(out_dir) / "last.pt")
    echo(f"train: {preset} {model_overrides} for {summary['step']} steps in "
         f"{summary['seconds']:.0f} s ({summary['patches_per_s']:.1f} patches/s); "
         f"run in {out_dir}")
    if summary["val_note"]:
        echo(f"  note: {summary['val_note']}")
    for row in summary["val"]:
        qp = "mean" if row["qp"] == "all" else f"QP {row['qp']}"
        echo(f"  {qp:>5}: PSNR-Y rec {row['psnr_rec']:.3f} dB -> filtered "
             f"{row['psnr_filt']:.3f} dB, gain {row['gain']:+.4f} dB "
             f"({row['pictures']} frames)")
    if best.is_file() and summary["best_metric"] is not None:
        from codecnn.models import read_checkpoint

        best_step = read_checkpoint(best)["step"]
        echo(f"  best checkpoint (used next): step {best_step}, mean validation gain "
             f"{summary['best_metric']:+.4f} dB")
    return summary


def run_eval_stage(checkpoint: str | Path, manifests: list[str | Path], out_dir: str | Path,
                   switch: str | None = "ctu", device: str | None = None,
                   echo: Echo = print) -> dict[str, Any]:
    """Evaluate; say the per-QP table and where the report is; return a summary:

    {"out_dir", "report_md", "per_qp", "overall", "seconds"}.
    """
    from codecnn.evaluate import evaluate_manifests
    from codecnn.evaluate.bd import format_bd_rate
    from codecnn.evaluate.report import per_qp_table

    t0 = time.perf_counter()
    report = evaluate_manifests(checkpoint, manifests, out_dir, switch=switch, device=device,
                                overwrite=True,
                                command=["codecnn", "eval", "--model", str(checkpoint),
                                         *(["--switch", switch] if switch else []),
                                         *(["--device", device] if device else []),
                                         "--overwrite", "-o", str(out_dir),
                                         *[a for m in manifests for a in ("--manifest", str(m))]])
    s = report["summary"]
    echo(per_qp_table(s, switch))
    o = s["overall"]
    line = f"BD-rate (PCHIP) always on: {format_bd_rate(o.get('bd_rate_pchip'))}"
    if switch:
        switched = format_bd_rate(o.get("switch_bd_rate_pchip"))
        line += f"; with {switch} switching: {switched}"
    echo(line)
    md = Path(out_dir) / "report.md"
    echo(f"report: {md}")
    return {"out_dir": str(out_dir), "report_md": str(md), "per_qp": s["per_qp"],
            "overall": o, "seconds": round(time.perf_counter() - t0, 2)}


def run_correlation_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike,
                          echo: Echo = print) -> dict[str, Any]:
    """Correlation analysis of the demo's shards; says the table."""
    from codecnn.analysis.correlation import correlation_report

    result = correlation_report(shard_dir, out_dir, progress=False)
    echo(result["table"])
    return result


def run_weights_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      echo: Echo = print) -> dict[str, Any]:
    """Weights search on shards with depth (HEVC via libde265); says the table."""
    from codecnn.analysis.weights import weights_report

    result = weights_report(shard_dir, out_dir, init_points=8, n_iter=40, progress=False)
    echo(result["table"])
    return result
