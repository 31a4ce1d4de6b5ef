"""The demo's training stage: a short CPU run on the shards the extract stage made."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codecnn.train.command import train_command
from codecnn.train.config import TrainConfig
from codecnn.train.loop import train_rdn


def run_train_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    steps: int = 100, preset: str = "rdn-s", batch_size: int = 8,
                    seed: int = 0, val_every: int | None = None,
                    model_overrides: dict[str, Any] | None = None,
                    overwrite: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Train `preset` for `steps` on the shards in `shard_dir`, writing the run to `out_dir`.

    The default (rdn-s reduced to 16 maps, 2 RDBs × 4 layers, g=8, batch 8, 100 steps, about
    5-8 patches/s) takes 2-3 minutes on 2 busy CPU cores. Prints and returns the validation
    PSNR-Y gain per QP it reached, however small (a hundred steps are far from the days a real
    model trains).
    Returns train_rdn's summary plus "checkpoint" (best.pt, or last.pt if there is none).
    """
    if model_overrides is None:
        model_overrides = {"features": 16, "blocks": 2, "layers": 4, "growth": 8}
    config = TrainConfig(data=(str(shard_dir),), preset=preset, model_overrides=model_overrides,
                         steps=steps, batch_size=batch_size, seed=seed, lr=1e-3,
                         warmup=max(1, steps // 10), val_every=val_every or steps,
                         log_every=max(1, steps // 30), workers=0, device=device)
    summary = train_rdn(config, out_dir, overwrite=overwrite,
                        command=train_command(config, str(out_dir)))
    best = Path(out_dir) / "best.pt"
    summary["checkpoint"] = str(best if best.is_file() else Path(out_dir) / "last.pt")
    print(f"train: {preset} {model_overrides} for {summary['step']} steps in "
          f"{summary['seconds']:.0f} s ({summary['patches_per_s']:.1f} patches/s); "
          f"run in {out_dir}")
    if summary["val_note"]:
        print(f"  note: {summary['val_note']}")
    for row in summary["val"]:
        qp = "mean" if row["nominal_qp"] == "all" else f"QP {row['nominal_qp']}"
        print(f"  {qp:>5}: PSNR-Y rec {row['psnr_rec']:.3f} dB -> filtered "
              f"{row['psnr_filtered']:.3f} dB, gain {row['gain_db']:+.4f} dB "
              f"({row['frames']} frames)")
    if best.is_file() and summary["best_metric"] is not None:
        from codecnn.models import read_checkpoint

        best_step = read_checkpoint(best)["step"]
        print(f"  best checkpoint (used next): step {best_step}, mean validation gain "
              f"{summary['best_metric']:+.4f} dB")
    return summary
