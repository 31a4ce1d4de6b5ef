"""Run logs: CSV files (the record), TensorBoard (to watch), PNG curves (to look at)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from codecnn.io.atomic import atomic_output, save_figure_atomic

TRAIN_FIELDS = ("step", "lr", "loss", "patches_per_s", "elapsed_s")
VAL_FIELDS = ("step", "qp", "sequences", "pictures", "psnr_rec", "psnr_filt", "gain")
# The names val.csv and monitor.csv had before the scorer was shared (codecnn.io.metrics);
# read_val_csv gives old files the new names.
_OLD_VAL_NAMES = {"nominal_qp": "qp", "psnr_filtered": "psnr_filt", "gain_db": "gain",
                  "frames": "pictures"}
# Held-out shards scored at each validation (to see gain against wall time; never to choose).
MONITOR_FIELDS = ("step", "elapsed_s", *VAL_FIELDS[1:])


class RunLog:
    """Appends to RUN/train.csv and RUN/val.csv and mirrors them to RUN/tb (TensorBoard).

    On resume the CSVs are cut back to the checkpoint's step, so rows of steps that are
    computed again after an interruption are not duplicated.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None,
                 tensorboard: bool = True, monitor: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.train_csv = self.run_dir / "train.csv"
        self.val_csv = self.run_dir / "val.csv"
        self.monitor_csv = self.run_dir / "monitor.csv"
        files = [(self.train_csv, TRAIN_FIELDS), (self.val_csv, VAL_FIELDS)]
        if monitor:
            files.append((self.monitor_csv, MONITOR_FIELDS))
        for path, fields in files:
            read = read_csv if path == self.train_csv else read_val_csv
            rows = read(path) if resume_step is not None else []
            rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
            _write_csv(path, fields, rows)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step)

    def train(self, row: dict[str, Any]) -> None:
        _append(self.train_csv, TRAIN_FIELDS, row)
        if self.tb:
            self.tb.add_scalar("train/loss", row["loss"], row["step"])
            self.tb.add_scalar("train/lr", row["lr"], row["step"])
            self.tb.add_scalar("train/patches_per_s", row["patches_per_s"], row["step"])

    def val(self, step: int, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            _append(self.val_csv, VAL_FIELDS, {"step": step, **row})
            if self.tb:
                self.tb.add_scalar(f"val/gain_db_qp{row['qp']}", row["gain"], step)

    def monitor(self, step: int, elapsed_s: float, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            _append(self.monitor_csv, MONITOR_FIELDS,
                    {"step": step, "elapsed_s": round(elapsed_s, 1), **row})
            if self.tb:
                self.tb.add_scalar(f"monitor/gain_db_qp{row['qp']}", row["gain"], step)

    def close(self) -> None:
        if self.tb:
            self.tb.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_val_csv(path: Path) -> list[dict[str, str]]:
    """Rows of RUN/val.csv or RUN/monitor.csv with VAL_FIELDS' names, also from runs written
    before the names were shared (nominal_qp, psnr_filtered, gain_db, frames)."""
    return [{_OLD_VAL_NAMES.get(k, k): v for k, v in r.items()} for r in read_csv(path)]


def _write_csv(path: Path, fields, rows) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _append(path: Path, fields, row) -> None:
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=fields).writerow({k: row.get(k) for k in fields})


def loss_description(run_dir: Path) -> tuple[str, str]:
    """(axis label, note) saying what train.csv's loss is, from RUN/config.json.

    The loss compares the predicted correction with the target (orig − rec)/peak over the
    CTU's valid samples, so it is the MSE (or mean |error|) of (orig − filtered)/peak.
    """
    try:
        cfg = json.loads((Path(run_dir) / "config.json").read_text())["train_config"]
    except (OSError, ValueError, KeyError, TypeError):
        return "training loss", ""
    kind = cfg.get("loss", "mse")
    label = ("MSE of (orig − filtered)/peak" if kind == "mse"
             else "mean |orig − filtered|/peak" if kind == "l1" else f"{kind} loss")
    weighting = cfg.get("qp_weighting", "none")
    every = int(cfg.get("log_every") or 0)
    notes = [f"mean of each {every} steps" if every > 1 else "each step" if every else ""]
    if weighting != "none":
        label += ", QP-weighted"
        notes.append(f"per-QP weights: {weighting}")
    return label, "; ".join(n for n in notes if n)


def plot_curves(run_dir: Path) -> Path:
    """RUN/curves.png (see curves_figure), written atomically."""
    return save_figure_atomic(curves_figure(run_dir), Path(run_dir) / "curves.png", dpi=100)


def curves_figure(run_dir: Path):
    """Training loss and validation PSNR-Y gain per QP over integer steps, from the CSVs.

    Every logged row is a marker, so a run of one or two rows still shows its points; an
    empty panel says that nothing is logged yet. An unweighted MSE loss also gets the PSNR
    it corresponds to on a right-hand axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    train = read_csv(run_dir / "train.csv")
    val = read_val_csv(run_dir / "val.csv")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    steps = [int(r["step"]) for r in train]
    loss = [float(r["loss"]) for r in train]
    label, note = loss_description(run_dir)
    finite = [v for v in loss if math.isfinite(v)]
    # log scale only where the loss spans enough to need it; a short run reads better linear
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax1.set_yscale("log")
    marker = "o" if len(steps) <= 60 else None
    if steps:
        ax1.plot(steps, loss, marker=marker, ms=4)
    else:
        _say_empty(ax1, "no training rows logged yet")
    ax1.set(xlabel="step", ylabel=label,
            title="training loss" + (f" ({note})" if note else ""))
    ax1.title.set_fontsize(10)
    ax1.grid(alpha=0.3)
    if label == "MSE of (orig − filtered)/peak" and finite and min(finite) > 0:
        def to_psnr(m):
            return -10 * np.log10(np.clip(m, 1e-12, None))

        def to_mse(p):
            return 10 ** (-np.asarray(p) / 10)

        ax1.secondary_yaxis("right", functions=(to_psnr, to_mse)).set_ylabel(
            "as PSNR (dB): −10·log10(loss)")
    qps = sorted({r["qp"] for r in val}, key=lambda q: (q != "all", q))
    for qp in qps:
        rs = [r for r in val if r["qp"] == qp]
        label = "mean over QPs" if qp == "all" else f"QP {qp}"
        ax2.plot([int(r["step"]) for r in rs], [float(r["gain"]) for r in rs],
                 marker="o", label=label, lw=2.5 if qp == "all" else 1.2)
    if not qps:
        _say_empty(ax2, "no validation yet")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set(xlabel="step", ylabel="PSNR-Y gain (dB)", title="validation gain (filtered − rec)")
    ax2.title.set_fontsize(10)
    ax2.grid(alpha=0.3)
    if qps:
        ax2.legend()
    for ax in (ax1, ax2):  # steps are whole numbers: never a tick at 1.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _say_empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
