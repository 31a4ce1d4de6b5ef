"""What a sweep ends with: a table (Markdown, JSON, CSV), score-vs-parameter plots and
TensorBoard HParams, all rebuilt from the trial folders, so a resumed or farmed-out sweep
reports exactly what is on disk."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

from codecnn.analysis.outputs import markdown_table, pyplot, save_figure, write_json
from codecnn.io.atomic import write_text_atomic

COLUMNS = ("trial", "kind", "lr", "features", "blocks", "crop", "loss", "kmac", "score",
           "status")
METRIC = "hparam/val_gain_db"


def _row(t: dict[str, Any]) -> dict[str, Any]:
    p = t["params"]
    return {"trial": t["trial"], "kind": t["kind"], "lr": p["lr"], "features": p["features"],
            "blocks": p["blocks"], "crop": p["crop"], "loss": p["loss"], "kmac": p["kmac"],
            "score": t["score"], "status": t["status"]}


def write_report(sweep_dir: Path, settings, trials: list[dict[str, Any]],
                 figures: bool = True) -> dict[str, Any]:
    """Write results.{json,md,csv} for the finished `trials` (trial.json merged with
    result.json, in trial order) and, with `figures`, scores.png and tb/ (seconds each: once
    per invocation); returns the report."""
    rows = [_row(t) for t in trials]
    best = max(rows, key=lambda r: r["score"]) if rows else None
    report = {"settings": settings.to_dict(), "finished": len(rows),
              "best": best, "score": "best validation PSNR-Y gain (dB, mean over QPs)",
              "trials": trials}
    write_json(sweep_dir / "results.json", report)
    write_text_atomic(sweep_dir / "results.md", markdown(rows, best))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(sweep_dir / "results.csv", buf.getvalue())
    if rows and figures:
        plot_scores(rows, settings.space.bounds(), sweep_dir / "scores.png")
        write_hparams(rows, sweep_dir / "tb")
    return report


def markdown(rows: list[dict[str, Any]], best: dict[str, Any] | None) -> str:
    headers = ["trial", "kind", "lr", "features", "blocks", "crop", "loss", "kMAC/px",
               "val gain (dB)", "status"]
    table = markdown_table(headers, [
        [f"{r['trial']}{' ★' if r is best else ''}", r["kind"], f"{r['lr']:.3g}",
         r["features"], r["blocks"], r["crop"] or "CTU", r["loss"], f"{r['kmac']:.1f}",
         f"{r['score']:+.4f}", r["status"]] for r in rows])
    lines = ["# Sweep", "", "Score: the trial's best validation PSNR-Y gain (dB, mean over QPs; "
             "0 is the identity filter each network starts as). ★ marks the best.", "", table]
    if best is not None:
        lines += ["", f"Best: trial {best['trial']} ({best['score']:+.4f} dB): "
                  f"`trial_{best['trial']:03d}/best.pt`"]
    return "\n".join(lines)


def plot_scores(rows: list[dict[str, Any]], bounds: dict[str, Any], path: Path) -> Path:
    """One panel per searched parameter (and kMAC/px): score against the value, colour =
    trial order, the best ringed, 0 dB (the identity filter) dashed."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator, NullFormatter

    names = [{"log10_lr": "lr"}.get(k, k) for k in bounds] + ["kmac"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharey=True,
                             squeeze=False)
    scores = [r["score"] for r in rows]
    order = [r["trial"] for r in rows]
    best = max(range(len(rows)), key=lambda i: scores[i])
    for ax, name in zip(axes[0], names, strict=True):
        values = [r[name] if r[name] is not None else 128 for r in rows]
        if name == "loss":
            cats = sorted(set(values))
            xs = [cats.index(v) for v in values]
            ax.set_xticks(range(len(cats)), cats)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        else:
            xs = values
        sc = ax.scatter(xs, scores, c=order, cmap="viridis", s=36, zorder=3,
                        vmin=min(order), vmax=max(order) if len(order) > 1 else min(order) + 1)
        ax.scatter([xs[best]], [scores[best]], s=140, facecolors="none", edgecolors="red",
                   linewidths=1.5, zorder=4)
        for x, y, k in zip(xs, scores, order, strict=True):
            ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if name == "lr":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # crowded labels otherwise
        elif name in ("features", "blocks", "crop"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.axhline(0.0, color="grey", lw=0.8, ls="--", zorder=1)
        ax.set_xlabel({"kmac": "kMAC/px", "crop": "crop (128 = CTU)"}.get(name, name))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation PSNR-Y gain (dB)")
    bar = fig.colorbar(sc, ax=axes[0].tolist(), label="trial", fraction=0.02, pad=0.01)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    fig.suptitle(f"Sweep: {len(rows)} trial(s), best trial {order[best]} "
                 f"({scores[best]:+.4f} dB)")
    return save_figure(fig, path)


def write_hparams(rows: list[dict[str, Any]], tb_dir: Path) -> None:
    """TensorBoard HParams, one run per trial, rewritten whole (into a temporary folder that
    replaces tb/), so a resumed sweep never shows a trial twice."""
    from torch.utils.tensorboard import SummaryWriter

    tmp = tb_dir.with_name(f".{tb_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with SummaryWriter(log_dir=str(tmp)) as w:
        for r in rows:
            hp = {"lr": float(r["lr"]), "features": int(r["features"]),
                  "blocks": int(r["blocks"]), "crop": int(r["crop"] or 128),
                  "loss": str(r["loss"]), "kmac_per_px": float(r["kmac"])}
            w.add_hparams(hp, {METRIC: float(r["score"])}, run_name=f"trial_{r['trial']:03d}")
    try:
        shutil.rmtree(tb_dir, ignore_errors=True)
        os.replace(tmp, tb_dir)
    except OSError:  # another process of a farmed-out sweep wrote it at the same moment
        shutil.rmtree(tmp, ignore_errors=True)
