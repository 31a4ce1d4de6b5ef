#!/usr/bin/env python
"""Speed of the deployed versions of a filter on the CPU: ms per 1080p luma frame.

One run times, on the same CTUs and round robin (so load from other processes hits every
row alike): PyTorch fp32 (eager), the exported ONNX fp32 and int8 (QDQ) models in
onnxruntime, and the int16 fixed-point simulation (codecnn.export.int16.run_exact, exact
integers computed as float64). The int16 row is the speed of the *simulation*, not of an int16
implementation: it says what checking a model's integer gain costs here, not what a codec
would spend. kMAC/px is the same for every row (the same convolutions); the ratio is against
onnxruntime fp32.

A 1080p frame is 15 × 9 = 135 CTUs of 128×128 (each input 132×132 with its border); the time
of --ctus CTUs in one batch is scaled by 135/ctus: say so when quoting. Inputs are real: CTUs
from --shards (default: the HEVC held-out corpus when present), else tiles of scikit-image's
`camera` photograph at 10 bits with QP 32 and depth 1. They also calibrate int8/int16.

    python tools/bench_export.py                           # zoo:rdn-hevc-ai-depth, 8 CTUs
    python tools/bench_export.py --model zoo:rdn-vvc-ai --ctus 16 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRAME_CTUS = 15 * 9
DEFAULT_SHARDS = Path("/work/data/corpus/hevc-ai/shards/heldout")


def _camera_ctus(planes: tuple[str, ...], n: int):
    """n 132×132 tiles of the camera photo (10-bit), QP 32, depth 1: raw planes [n, C, P, P]."""
    import numpy as np
    from skimage import data

    img = data.camera().astype(np.int32) * 4  # 512×512, 8 → 10 bits
    tiles = [img[y:y + 132, x:x + 132] for y in range(0, 380, 126) for x in range(0, 380, 126)]
    tiles = (tiles * (1 + n // len(tiles)))[:n]
    side = {"qp": 32, "depth": 1}
    return np.stack([np.stack([t if p == "rec" else np.full_like(t, side[p]) for p in planes])
                     for t in tiles])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="zoo:rdn-hevc-ai-depth")
    ap.add_argument("--shards", default=None, help="real CTUs (default: HEVC held-out set)")
    ap.add_argument("--ctus", type=int, default=8, help="CTUs timed (scaled to 135)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from codecnn.evaluate.model_io import load_filter
    from codecnn.export.calib import read_patches
    from codecnn.export.int8 import quantise_int8
    from codecnn.export.int16 import quantise_rdn, run_exact
    from codecnn.export.runtime import OnnxFilter
    from codecnn.export.to_onnx import export_onnx, normalise, onnx_metadata

    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_filter(args.model, "cpu")
    planes = tuple(info["planes"])
    shards = args.shards or (str(DEFAULT_SHARDS) if DEFAULT_SHARDS.is_dir() else None)
    if shards:
        raw, bd = read_patches([shards], planes, info["border"], args.ctus)
        source = f"{len(raw)} CTUs of {shards}"
    else:
        raw, bd = _camera_ctus(planes, args.ctus), 10
        source = f"{args.ctus} tiles of skimage camera (10-bit)"
    x = normalise(raw, planes, bd)
    xt = torch.from_numpy(x)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "m.onnx", Path(tmp) / "m.int8.onnx"
        export_onnx(model, fp32, onnx_metadata(info))
        quantise_int8(fp32, int8, x)
        with torch.inference_mode():
            prog = quantise_rdn(model, raw, bd)
        threads = args.threads or torch.get_num_threads()
        runners = {"PyTorch fp32 (eager)": lambda: model(xt)}
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8 (QDQ)", int8)):
            m = OnnxFilter(path, threads=threads)
            runners[name] = (lambda m=m: m(xt))
        runners["int16 simulation (float64, exact)"] = lambda: run_exact(prog, raw)
        times: dict[str, list[float]] = {k: [] for k in runners}
        with torch.inference_mode():
            for fn in runners.values():  # warm-up
                fn()
            for _ in range(args.repeat):
                for name, fn in runners.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
    n = len(raw)
    ms = {k: min(v) * 1000 * FRAME_CTUS / n for k, v in times.items()}
    base = ms["onnxruntime fp32"]
    print(f"{args.model}: {info['kmac_per_pixel']:.2f} kMAC/px, {info['params']:,} params; "
          f"CPU, {threads} threads, torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{n} CTUs ({source}) in one batch, scaled ×{FRAME_CTUS}/{n} to a 1080p frame; "
          f"best of {args.repeat}.\n")
    print("| path | kMAC/px | ms per 1080p frame | time vs onnxruntime fp32 |")
    print("|---|---:|---:|---:|")
    for k, v in ms.items():
        print(f"| {k} | {info['kmac_per_pixel']:.2f} | {v:.0f} | {v / base:.2f}× |")


if __name__ == "__main__":
    main()
