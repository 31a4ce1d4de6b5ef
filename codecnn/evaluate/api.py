"""The evaluate stage's entry points: filter a YUV file, evaluate manifests or shards.

These are what the CLI (`codecnn filter`, `codecnn eval`) and the demo call.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import DataError
from codecnn.io.shard import open_shard, shard_paths
from codecnn.io.yuv import YuvWriter, open_yuv


def pick_device(device: str | None) -> str:
    """'cuda' when present and not told otherwise, else 'cpu'."""
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DataError(f"device {device!r} asked for, but no CUDA device is available")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def filter_yuv(checkpoint: str | Path, yuv: str | Path, out: str | Path,
               size: tuple[int, int] | None = None, bit_depth: int | None = None,
               qp: int | None = None, device: str | None = None, dtype: str = "fp32",
               batch: int | None = None, overwrite: bool = False, progress: bool = True
               ) -> dict[str, Any]:
    """Filter every luma picture of a raw YUV file; chroma is copied unchanged.

    The output has the input's format and is written under a temporary name, renamed when
    complete. `qp` is the QP plane's value for models that take one (the slice QP).
    Returns {"frames", "out", "seconds", "device"}.
    """
    from tqdm import tqdm

    from codecnn.evaluate.model_io import check_bit_depth, load_filter
    from codecnn.evaluate.tiling import TiledFilter

    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (use --overwrite to replace it)")
    w, h = size if size else (None, None)
    reader = open_yuv(yuv, width=w, height=h, bit_depth=bit_depth)
    device = pick_device(device)
    model, info = load_filter(checkpoint, device)
    check_bit_depth(info, reader.format.bit_depth, str(yuv))
    if "qp" in info["planes"] and qp is None:
        raise DataError(f"{checkpoint}: model uses the qp plane; give --qp (the slice QP)")
    if "depth" in info["planes"]:
        raise DataError(f"{checkpoint}: model uses the depth plane; `filter` has no depth "
                        "input (use `codecnn eval` with a manifest that has a depth map)")
    tf = TiledFilter(model, reader.format.bit_depth, device=device, batch=batch, dtype=dtype)
    t0 = time.perf_counter()
    with YuvWriter(out, reader.format) as writer:
        frames = (reader.planes(k) for k in range(len(reader)))
        pictures = ((np.asarray(planes[0]), qp, None) for planes in frames)
        # On CUDA the next picture is filtered while this one is written (filter_stream).
        for k, y in enumerate(tqdm(tf.filter_stream(pictures, where=str(yuv)),
                                   total=len(reader), desc=f"filter {Path(yuv).name}",
                                   unit="frame", file=sys.stderr,
                                   disable=None if progress else True)):
            writer.write((y, *reader.planes(k)[1:]))
    return {"frames": len(reader), "out": str(out), "seconds": time.perf_counter() - t0,
            "device": device}


def evaluate_manifests(checkpoint: str | Path, manifests: list[str | Path],
                       out_dir: str | Path, switch: str | None = None,
                       device: str | None = None, dtype: str = "fp32", batch: int | None = None,
                       overwrite: bool = False, command: list[str] | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint on coded sequences and write the report directory.

    Besides report.json/.md and the plots, the directory gets one YUView statistics file
    per sequence and QP (`<source>_qp<QP>.vtmbmsstats`: per-CTU gain and on flag of every
    frame), named in each result's "block_stats".
    Returns the report dict (model, results per sequence and QP, summary with per-QP gains,
    per-sequence BD-rate/BD-PSNR and their means, switch mode, out_dir).
    """
    from codecnn.evaluate.model_io import check_bit_depth, load_filter
    from codecnn.evaluate.report import write_report
    from codecnn.evaluate.sequences import evaluate_sequence, expand_manifests, load_manifests
    from codecnn.evaluate.summary import summarise
    from codecnn.evaluate.tiling import TiledFilter

    if switch not in (None, "ctu", "frame"):
        raise DataError(f"--switch must be ctu or frame, got {switch!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir}: already exists (use --overwrite to replace it)")
    manifests = expand_manifests(list(manifests))
    seqs = load_manifests(manifests)
    depths = {s.bit_depth for s in seqs}
    if len(depths) != 1:
        raise DataError(f"manifests mix bit depths {sorted(depths)}")
    device = pick_device(device)
    model, info = load_filter(checkpoint, device)
    bit_depth = depths.pop()
    check_bit_depth(info, bit_depth, str(manifests[0]))
    tf = TiledFilter(model, bit_depth, device=device, batch=batch, dtype=dtype)
    t0 = time.perf_counter()
    results = [evaluate_sequence(tf, s, switch, where=str(m), progress=progress)
               for s, m in zip(seqs, manifests, strict=True)]
    ctu_stats = [r.pop("ctu_stats") for r in results]  # arrays for the YUView files, not JSON
    report = {
        "kind": "manifests",
        "model": info,
        "manifests": [str(Path(m).resolve()) for m in manifests],
        "switch": switch,
        "device": device,
        "dtype": dtype,
        "seconds": round(time.perf_counter() - t0, 2),
        "command": command,
        "results": results,
        "summary": summarise(results, switch),
    }
    write_report(report, out_dir, overwrite=overwrite, ctu_stats=ctu_stats)
    report["out_dir"] = str(out_dir)
    return report


def evaluate_data(checkpoint: str | Path, shards: str | Path | list, out_dir: str | Path,
                  device: str | None = None, dtype: str = "fp32", batch: int | None = None,
                  overwrite: bool = False, command: list[str] | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Per-QP gain of a checkpoint on HDF5 shards; writes report.json/.md and the gain plot."""
    from codecnn.evaluate.model_io import check_bit_depth, load_filter
    from codecnn.evaluate.report import write_report
    from codecnn.evaluate.shards import evaluate_shards

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir}: already exists (use --overwrite to replace it)")
    paths = shard_paths(shards if isinstance(shards, list) else [shards])
    device = pick_device(device)
    model, info = load_filter(checkpoint, device)
    for p in paths:
        with open_shard(p) as f:
            check_bit_depth(info, int(f.attrs["bit_depth"]), str(p))
    summary = evaluate_shards(model, paths, device=device, batch=batch, dtype=dtype,
                              progress=progress)
    report = {"kind": "shards", "model": info, "shards": [str(p.resolve()) for p in paths],
              "device": device, "dtype": dtype, "command": command, "switch": None,
              "summary": summary}
    write_report(report, out_dir, overwrite=overwrite)
    report["out_dir"] = str(out_dir)
    return report
