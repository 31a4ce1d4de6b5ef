#!/usr/bin/env python
"""Inference speed of the in-loop filter: milliseconds per 1080p luma frame.

For each preset (rdn-s, rdn-m) the baseline is eager fp32 (NCHW); every row, compiled or
eager, filters at the same batch (the timed CTUs on the CPU, a whole frame of 135 CTUs on
CUDA), so a compiled row differs from its eager twin only in the compilation; the
other rows are the faster paths (channels_last, bf16, torch.compile; on CUDA also CUDA graphs
via compile's "reduce-overhead" and half-precision weights and I/O), measured in the same run
and reported as a speed-up against that baseline, with kMAC/pixel and parameters.

A 1080p frame is 15 × 9 = 135 CTUs of 128×128 (the last row is cut, but computed whole), so
with --ctus N (< 135) the time of N CTUs is measured and scaled by 135/N: say so when quoting.
The CUDA run filters whole frames through codecnn.evaluate.TiledFilter (upload, tiling,
model, assembly, download). Weights are random: speed does not depend on them.

    python tools/bench_infer.py                      # CPU, a few CTUs, scaled (~1-2 min)
    python tools/bench_infer.py --device cuda        # GPU, whole 1080p frames

`--batches 1 4 16 64` measures instead what the batch costs per CTU: whole frames
(`--size`, edge CTUs included) through `TiledFilter.filter` as `codecnn filter`/`eval` run
them (fp32), every batch size (and every `--threads` count) in one round robin, best of
`--repeat`; per CTU: wall time, CPU time (user + system, from `resource.getrusage`) and minor
page faults, each as a ratio to batch 1 at the same thread count in the same run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

W, H, CTU = 1920, 1080, 128
FRAME_CTUS = -(-W // CTU) * -(-H // CTU)  # 135


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))  # this GPU, not the current one


# (compiled row, its eager twin: the same dtype, weights and I/O)
COMPILED_VS_EAGER = [("bf16 compile", "bf16 weights+I/O, channels_last"),
                     ("bf16 weights+I/O, compile", "bf16 weights+I/O, channels_last")]


def _variants(device: str, compile_cpu: bool) -> list[tuple[str, dict]]:
    # On CUDA every row filters a whole frame per batch (135 CTUs), so compiled and eager
    # rows differ only in the path, not in the batch.
    v = [("eager fp32 (baseline)", dict(dtype="fp32", channels_last=False)),
         ("fp32 channels_last", dict(dtype="fp32", channels_last=True)),
         ("bf16 autocast, channels_last", dict(dtype="bf16", channels_last=True)),
         ("bf16 weights+I/O, channels_last", dict(dtype="bf16", channels_last=True, cast=True))]
    if device.startswith("cuda"):
        v += [("bf16 compile", dict(dtype="bf16", channels_last=True, cast=True, compile=True,
                                    batch=FRAME_CTUS)),
              ("fp16 weights+I/O, compile + CUDA graphs",
               dict(dtype="fp16", channels_last=True, cast=True, compile=True, batch=FRAME_CTUS))]
    elif compile_cpu:
        v += [("bf16 weights+I/O, compile",
               dict(dtype="bf16", channels_last=True, cast=True, compile=True))]
    return v


def bench(preset: str, device: str, ctus: int, repeat: int, compile_cpu: bool) -> list[dict]:
    import numpy as np
    import torch

    from codecnn.evaluate.complexity import kmac_per_pixel, num_params
    from codecnn.evaluate.tiling import TiledFilter
    from codecnn.models import build_model

    torch.manual_seed(0)
    model = build_model(preset, planes=("rec", "qp"))
    kmac, params = kmac_per_pixel(model), num_params(model)
    cuda = device.startswith("cuda")
    n = FRAME_CTUS if cuda else min(ctus, FRAME_CTUS)
    if cuda:
        h, w = H, W
    else:  # a strip of n CTUs: the same per-CTU work as a frame
        h, w = CTU, CTU * n
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    rec = np.clip(512 + 300 * np.sin(x / 23) * np.cos(y / 17) + rng.normal(0, 10, (h, w)),
                  0, 1023).astype(np.uint16)
    stack = np.stack([rec, np.full_like(rec, 32)])
    filters = []
    for name, opts in _variants(device, compile_cpu):
        # One batch size for every row: compiled rows pad a short batch to it, so a
        # smaller one on the CPU strip would time padding, not the path.
        opts = {"batch": FRAME_CTUS if cuda else n, **opts}
        tf = TiledFilter(model, 10, device=device, **opts)
        t0 = time.perf_counter()
        for _ in range(3 if opts.get("compile") else 1):  # warm-up (compile, autotune, graphs)
            tf.residual(stack)
        _sync(device)
        filters.append((name, opts, tf, time.perf_counter() - t0, []))
    # Round robin, best of `repeat`: load from other processes hits every variant alike.
    for _ in range(repeat):
        for _name, _opts, tf, _warm, times in filters:
            t0 = time.perf_counter()
            tf.residual(stack)
            _sync(device)
            times.append(time.perf_counter() - t0)
    rows = []
    for name, opts, _tf, warm, times in filters:
        ms = min(times) * 1000 * FRAME_CTUS / n
        rows.append({"preset": preset, "variant": name, "ms": ms, "kmac": kmac,
                     "params": params, "warmup_s": warm, "batch": opts["batch"]})
        print(f"  {preset:6s} {name:42s} {ms:10.1f} ms/frame", file=sys.stderr)
    base = rows[0]["ms"]
    for r in rows:
        r["speedup"] = base / r["ms"]
    return rows


def bench_batches(preset: str, size: tuple[int, int], batches: list[int], threads: list[int],
                  repeat: int, device: str) -> list[dict]:
    """Per-CTU cost of filtering whole frames at each batch size and thread count."""
    import numpy as np
    import torch

    from codecnn.evaluate.tiling import TiledFilter
    from codecnn.models import build_model

    torch.manual_seed(0)
    model = build_model(preset, planes=("rec", "qp"))
    w, h = size
    ctus = -(-w // CTU) * -(-h // CTU)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    rec = np.clip(512 + 300 * np.sin(x / 23) * np.cos(y / 17) + rng.normal(0, 10, (h, w)),
                  0, 1023).astype(np.uint16)
    runs = []
    for t in threads:
        for b in batches:
            tf = TiledFilter(model, 10, device=device, batch=b)
            runs.append({"preset": preset, "threads": t, "batch": b, "tf": tf, "wall": [],
                         "cpu": [], "sys": [], "faults": []})
    for run in runs:  # warm-up: first-use allocations and oneDNN primitive creation
        torch.set_num_threads(run["threads"])
        run["tf"].filter(rec, 32)
    # Round robin, best of `repeat`: load from other processes hits every batch alike.
    for _ in range(repeat):
        for run in runs:
            torch.set_num_threads(run["threads"])
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            run["tf"].filter(rec, 32)
            _sync(device)
            wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
            run["wall"].append(wall)
            run["cpu"].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            run["sys"].append(r1.ru_stime - r0.ru_stime)
            run["faults"].append(r1.ru_minflt - r0.ru_minflt)
    rows = []
    for run in runs:
        k = int(np.argmin(run["wall"]))
        rows.append({"preset": preset, "frame": f"{w}x{h}", "ctus": ctus,
                     "threads": run["threads"], "batch": run["batch"],
                     "ms": 1000 * run["wall"][k] / ctus, "cpu_ms": 1000 * min(run["cpu"]) / ctus,
                     "sys_ms": 1000 * min(run["sys"]) / ctus,
                     "faults": min(run["faults"]) / ctus})
    for r in rows:
        base = next(q for q in rows if q["threads"] == r["threads"] and q["batch"] == batches[0])
        r["x_wall"], r["x_cpu"] = r["ms"] / base["ms"], r["cpu_ms"] / base["cpu_ms"]
        print(f"  {preset:8s} {r['threads']} thr batch {r['batch']:3d} {r['ms']:8.1f} ms/CTU "
              f"({r['x_wall']:.2f}x)  cpu {r['cpu_ms']:8.1f} ({r['x_cpu']:.2f}x)  "
              f"faults/CTU {r['faults']:9.0f}", file=sys.stderr)
    return rows


def print_batches(rows: list[dict], dev: str, repeat: int) -> None:
    import torch

    print(f"Filtering whole frames (TiledFilter.filter, fp32): cost per CTU by batch size; "
          f"{dev}, torch {torch.__version__}; best of {repeat}; × = ratio to batch "
          f"{rows[0]['batch']} at the same thread count, same run.\n")
    print("| model | frame (CTUs) | threads | batch | ms/CTU | × | CPU ms/CTU | × | "
          "of it system | minor faults/CTU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['frame']} ({r['ctus']}) | {r['threads']} | {r['batch']} | "
              f"{r['ms']:.1f} | {r['x_wall']:.2f}× | {r['cpu_ms']:.1f} | {r['x_cpu']:.2f}× | "
              f"{r['sys_ms']:.1f} | {r['faults']:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["rdn-s", "rdn-m"])
    ap.add_argument("--ctus", type=int, default=2,
                    help="CTUs timed on the CPU (scaled to 135 per 1080p frame)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="torch CPU threads (0: default); with --batches, each count in turn")
    ap.add_argument("--batches", type=int, nargs="+", default=None,
                    help="measure per-CTU cost of whole frames at these batch sizes instead")
    ap.add_argument("--size", default="1920x1080", help="frame size for --batches (WxH)")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile on the CPU (slow to warm up here)")
    args = ap.parse_args()
    import torch

    threads = [t or torch.get_num_threads() for t in args.threads]
    torch.set_num_threads(threads[0])
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dev = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
           else f"CPU, {torch.get_num_threads()} threads")
    if args.batches:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        rows = []
        for preset in args.models:
            rows += bench_batches(preset, size, args.batches, threads, args.repeat, args.device)
        print_batches(rows, dev.split(",")[0], args.repeat)
        return
    rows = []
    for preset in args.models:
        rows += bench(preset, args.device, args.ctus, args.repeat, args.compile)
    how = ("whole 1920×1080 frames (135 CTUs, one batch for compiled rows)"
           if args.device.startswith("cuda")
           else f"{min(args.ctus, FRAME_CTUS)} CTUs timed, scaled ×{FRAME_CTUS}/"
                f"{min(args.ctus, FRAME_CTUS)} to a 1080p frame")
    print(f"Filter inference, ms per 1080p luma frame: {dev}, torch {torch.__version__}; {how}; "
          f"best of {args.repeat}.\n")
    print("| model | path | batch | kMAC/pixel | params | ms/frame | speed-up vs eager fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['variant']} | {r['batch']} | {r['kmac']:.1f} | "
              f"{r['params']:,} | {r['ms']:.1f} | {r['speedup']:.2f}× |")
    for preset in args.models:  # compiled against eager, same weights, I/O and batch
        ms = {r["variant"]: r["ms"] for r in rows if r["preset"] == preset}
        for comp, eager in COMPILED_VS_EAGER:
            if comp in ms and eager in ms:
                print(f"\n{preset}: {comp!r} runs at {ms[eager] / ms[comp]:.2f}× {eager!r} "
                      f"(same batch)")


if __name__ == "__main__":
    main()
