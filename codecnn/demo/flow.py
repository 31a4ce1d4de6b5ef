"""`codecnn demo`'s order of stages (`run_demo`): the whole flow on sample content that ships
with the dependencies.

encode (real VVenC or x265, four QPs) → the shipped model (codecnn zoo) on the held-out clip
→ extract (HDF5 shards) → train (a short RDN run) → eval (PSNR-Y gain per QP and BD-rate on
the same held-out clip) → analyze (QP/depth correlation; with real depth, HEVC's from
libde265 or VVC's from a VTM decoder, also the Bayesian weighting) → one summary of both
models. Each stage is one library function; this
module only chains them and says where each result is.

The held-out clip is bigbuckbunny from frame 100 at full size: part of the zoo's held-out
set, so neither the shipped model nor the demo's own run has seen it.

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
HELDOUT_SOURCES = (("bigbuckbunny", None, "bigbuckbunny", "between(n,100,131)"),)
FULL_TRAIN_SOURCES = TRAIN_SOURCES
FULL_HELDOUT_SOURCES = HELDOUT_SOURCES
# The shipped model the demo shows first, per codec.
ZOO_MODELS = {"vvc": "rdn-vvc-ai", "hevc": "rdn-hevc-ai-depth"}


def _stage(echo, n: int, name: str) -> float:
    echo(f"\n== {n}. {name} ==")
    return time.perf_counter()


def _encode(out: Path, codec: str, frames: int, ffmpeg, echo, sources,
            vtm_decoder: Path | None = None) -> dict[str, Any]:
    from codecnn.demo.encoding import run_encode_stage, run_hevc_encode_stage

    depth = ", CU depth from VTM" if vtm_decoder is not None else ""
    _stage(echo, 1, f"encode ({codec.upper()}, All Intra, QP 22/27/32/37{depth})")
    if codec == "hevc":
        return run_hevc_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo,
                                     sources=sources)
    return run_encode_stage(out, frames=frames, ffmpeg=ffmpeg, echo=echo, codec=codec,
                            sources=sources, vtm_decoder=vtm_decoder)


def _zoo(out: Path, codec: str, heldout_manifests: list, device: str,
         echo) -> dict[str, Any] | None:
    """The shipped model's report on the held-out clip; None where it is not shipped."""
    from codecnn.demo.stages import run_eval_stage
    from codecnn.zoo import list_zoo

    zoo_name = ZOO_MODELS[codec]
    _stage(echo, 2, f"the shipped model zoo:{zoo_name} on the held-out clip")
    if zoo_name not in list_zoo():
        echo(f"zoo:{zoo_name} is not shipped in this checkout; skipped "
             f"(`codecnn zoo train {zoo_name} --install` builds it)")
        return None
    return run_eval_stage(f"zoo:{zoo_name}", heldout_manifests, out / "report_zoo",
                          switch="ctu", device=device, echo=echo)


def _train(out: Path, shard_dir: Path, full: bool, steps: int, device: str,
           echo) -> dict[str, Any]:
    from codecnn.demo.stages import run_train_stage

    _stage(echo, 4, "train (RDN on the extracted shards)")
    if full:
        return run_train_stage(shard_dir, out / "run", steps=steps, preset="rdn-s",
                               batch_size=32, model_overrides={}, device=device,
                               val_every=max(1, steps // 10), echo=echo)
    return run_train_stage(shard_dir, out / "run", steps=steps, device=device,
                           val_every=max(1, steps // 5), echo=echo)


def run_demo(out_dir: str | os.PathLike, codec: str = "vvc", device: str = "cpu",
             full: bool = False, ffmpeg: str | os.PathLike | None = None,
             echo=print, frames: int | None = None, steps: int | None = None,
             overwrite: bool = False,
             vtm_decoder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run every demo stage into `out_dir`; returns each stage's summary by name.

    vtm_decoder (VVC): a VTM DecoderApp with tracing; the coded sequences then carry VTM's
    CU depth, the shards depth, and the Bayesian QP/depth weighting runs on VVC.

    frames/steps override the frames coded per source and the training steps (the tests run
    the whole chain with a single frame and a few steps).
    """
    from codecnn.demo.stages import (
        run_correlation_stage,
        run_eval_stage,
        run_extract_stage,
        run_weights_stage,
    )
    from codecnn.errors import CodecnnError
    from codecnn.evaluate.api import pick_device

    pick_device(device)  # a missing GPU is an error before any work, not after the encodes
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CodecnnError(f"{out}: exists and is not empty (an earlier demo?); give another "
                           f"-o or --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    frames = frames or (32 if full else 8)
    steps = steps or (5000 if full else DEMO_STEPS)
    heldout_sources = FULL_HELDOUT_SOURCES if full else HELDOUT_SOURCES
    sources = (FULL_TRAIN_SOURCES if full else TRAIN_SOURCES) + heldout_sources
    decoder = Path(vtm_decoder) if vtm_decoder is not None and codec == "vvc" else None
    results: dict[str, Any] = {"encode": _encode(out, codec, frames, ffmpeg, echo, sources,
                                                 decoder)}
    heldout_names = {src[2] for src in heldout_sources}
    manifests = results["encode"]["manifests"]
    train_manifests = [m for m in manifests if Path(m).parents[2].name not in heldout_names]
    heldout_manifests = [m for m in manifests if Path(m).parents[2].name in heldout_names]
    zoo = _zoo(out, codec, heldout_manifests, device, echo)
    if zoo is not None:
        results["zoo"] = zoo

    _stage(echo, 3, "extract (132×132 CTU patches → HDF5 shards)")
    shard_dir = out / "shards"
    results["extract"] = run_extract_stage(train_manifests, shard_dir, jobs=2, echo=echo)
    results["train"] = _train(out, shard_dir, full, steps, device, echo)

    _stage(echo, 5, "eval (held-out clip: " + ", ".join(sorted(heldout_names)) + ")")
    results["eval"] = run_eval_stage(results["train"]["checkpoint"], heldout_manifests,
                                     out / "report", switch="ctu", device=device, echo=echo)

    _stage(echo, 6, "analyze (QP/depth vs coding error)")
    results["correlation"] = run_correlation_stage(shard_dir, out / "analysis", echo=echo)
    if codec == "hevc" or decoder is not None:  # real depth: libde265's or VTM's
        results["weights"] = run_weights_stage(shard_dir, out / "analysis", echo=echo)
    _closing(out, codec, results, sorted(heldout_names), t_start, echo)
    return results


def _closing(out: Path, codec: str, results: dict[str, Any], heldout: list[str],
             t_start: float, echo) -> None:
    """The summary of both models, then where every result is."""
    from codecnn.demo.overview import write_demo_summary

    models = {f"demo run ({results['train']['step']} steps here)": results["eval"]}
    if "zoo" in results:
        models = {f"zoo:{ZOO_MODELS[codec]} (shipped)": results["zoo"], **models}
    summary_md = write_demo_summary(out, models, heldout)
    echo("\n" + summary_md.read_text())

    minutes = (time.perf_counter() - t_start) / 60
    echo(f"\n== done in {minutes:.1f} min ==")
    echo(f"coded sequences and RD table: {Path(results['encode']['manifests'][0]).parents[3]}")
    echo(f"shards:                       {out / 'shards'}")
    echo(f"training run (checkpoints):   {out / 'run'}")
    echo(f"summary (both models):        {summary_md}")
    if "zoo" in results:
        echo(f"shipped model's report:       {out / 'report_zoo' / 'report.md'}")
    echo(f"demo run's report:            {out / 'report' / 'report.md'}")
    echo(f"analyses:                     {out / 'analysis'}")
