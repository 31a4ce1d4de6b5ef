"""`codecnn demo`: the whole flow on sample content that ships with the dependencies.

encode (real VVenC or x265, four QPs) → extract (HDF5 shards) → train (a short RDN run) →
eval (PSNR-Y gain per QP and BD-rate on a clip the training never saw) → analyze (QP/depth
correlation; with HEVC's real depth also the Bayesian weighting). Each stage is one library
function; this module only chains them and says where each result is.

The default run is small enough for a 2-core CPU (a few minutes). `full=True` (with a GPU)
codes more frames at full sample size and trains the `rdn-s` preset for longer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# (sample, scale (w, h) or None, coded name). Training data and the held-out clip differ.
TRAIN_SOURCES = (("carphone_pristine", None, "carphone"), ("bikes", None, "bikes"))
DEMO_STEPS = 500  # about 4 minutes on 2 CPU cores with the demo's reduced rdn-s
HELDOUT_SOURCES = (("bigbuckbunny", (320, 184), "bbb320"),)
FULL_TRAIN_SOURCES = TRAIN_SOURCES
FULL_HELDOUT_SOURCES = (("bigbuckbunny", (640, 360), "bbb640"),)


def _stage(echo, n: int, name: str) -> float:
    echo(f"\n== {n}. {name} ==")
    return time.perf_counter()


def run_demo(out_dir: str | os.PathLike, codec: str = "vvc", device: str = "cpu",
             full: bool = False, ffmpeg: str | os.PathLike | None = None,
             echo=print, frames: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """Run every demo stage into `out_dir`; returns each stage's summary by name.

    frames/steps override the frames coded per source and the training steps (the tests run
    the whole chain with a single frame and a few steps).
    """
    from codecnn.analysis.correlation import run_correlation_stage
    from codecnn.codec.stage import run_encode_stage
    from codecnn.evaluate import run_eval_stage
    from codecnn.extract.run import run_extract_stage
    from codecnn.train.demo import run_train_stage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    frames = frames or (32 if full else 8)
    steps = steps or (5000 if full else DEMO_STEPS)
    train_sources = FULL_TRAIN_SOURCES if full else TRAIN_SOURCES
    heldout_sources = FULL_HELDOUT_SOURCES if full else HELDOUT_SOURCES
    results: dict[str, Any] = {}

    _stage(echo, 1, f"encode ({codec.upper()}, All Intra, QP 22/27/32/37)")
    if codec == "hevc":
        from codecnn.codec.hevc_stage import run_hevc_encode_stage

        enc = run_hevc_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo,
                                    sources=train_sources + heldout_sources)
    else:
        enc = run_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo, codec=codec,
                               sources=train_sources + heldout_sources)
    heldout_names = {name for _, _, name in heldout_sources}
    train_manifests = [m for m in enc["manifests"] if Path(m).parent.parent.name
                       not in heldout_names]
    heldout_manifests = [m for m in enc["manifests"] if Path(m).parent.parent.name
                         in heldout_names]
    results["encode"] = enc

    _stage(echo, 2, "extract (132×132 CTU patches → HDF5 shards)")
    shard_dir = out / "shards"
    results["extract"] = run_extract_stage(train_manifests, shard_dir, jobs=2)

    _stage(echo, 3, "train (RDN on the extracted shards)")
    if full:
        train = run_train_stage(shard_dir, out / "run", steps=steps, preset="rdn-s",
                                batch_size=32, model_overrides={}, device=device,
                                val_every=max(1, steps // 10))
    else:
        train = run_train_stage(shard_dir, out / "run", steps=steps, device=device,
                                val_every=max(1, steps // 5))
    results["train"] = train

    _stage(echo, 4, "eval (held-out clip: " + ", ".join(sorted(heldout_names)) + ")")
    results["eval"] = run_eval_stage(train["checkpoint"], heldout_manifests, out / "report",
                                     switch="ctu", device=device)

    _stage(echo, 5, "analyze (QP/depth vs coding error)")
    analysis_dir = out / "analysis"
    results["correlation"] = run_correlation_stage(shard_dir, analysis_dir)
    if codec == "hevc":
        from codecnn.analysis.weights import run_weights_stage

        results["weights"] = run_weights_stage(shard_dir, analysis_dir)

    minutes = (time.perf_counter() - t_start) / 60
    echo(f"\n== done in {minutes:.1f} min ==")
    echo(f"coded sequences and RD table: {Path(enc['manifests'][0]).parents[2]}")
    echo(f"shards:                       {shard_dir}")
    echo(f"training run (checkpoints):   {out / 'run'}")
    echo(f"evaluation report:            {out / 'report' / 'report.md'}")
    echo(f"analyses:                     {analysis_dir}")
    return results
