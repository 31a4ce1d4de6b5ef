"""What the real CU depth/QP maps cost on top of decoding (libde265, in process).

Encodes a few frames of shipped samples with x265 (All Intra and Random Access, QP 32), then
times per frame, in the same run: libde265 decoding alone (the baseline), decoding plus the
sherlock265 drawings (draw_CB_grid, draw_QuantPY), and decoding plus the finished depth and
QP planes (grid → quadtree depth, grey → QP). FFmpeg's own `hevc` decode of the same stream
(one process, so it includes FFmpeg's start-up) is listed for scale. Prints a Markdown table
of ms/frame and ratios to the baseline.

    PYTHONPATH=. python tools/bench_hevc_maps.py [--frames 8] [--repeats 3] [--device cpu]

libde265 and FFmpeg decode on the CPU; `--device cuda` is accepted for a uniform benchmark
interface and changes nothing here.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

CASES = (("carphone_pristine", None), ("bikes", None), ("bigbuckbunny", None))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; CPU decoders")
    args = ap.parse_args()

    from codecnn.codec import hevc_maps, libde265
    from codecnn.codec.codecs import CODECS, read_headers
    from codecnn.codec.commands import decode_command
    from codecnn.codec.encode import encode_sequence
    from codecnn.codec.ffmpeg import find_ffmpeg
    from codecnn.codec.samples import find_sample

    ff = find_ffmpeg(None, "libx265", "hevc")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sample, scale in CASES:
            _, _, path = find_sample(sample)
            for config in ("ai", "ra"):
                (seq,) = encode_sequence(path, [args.qp], config, args.frames,
                                         Path(tmp) / config, codec="hevc", preset="fast",
                                         scale=scale, name=sample, progress=False)
                sps, pics = read_headers(ff.path, "hevc", seq.bitstream)
                n = len(pics)

                def plain(bs=seq.bitstream):
                    for _ in libde265.iter_decode(bs, maps=False):
                        pass

                def drawn(bs=seq.bitstream):
                    for _ in libde265.iter_decode(bs):
                        pass

                def full(bs=seq.bitstream, sps=sps, pics=pics, d=Path(tmp) / "d.raw",
                         q=Path(tmp) / "q.raw"):
                    hevc_maps.decode_hevc(bs, sps, pics, None, d, q)

                def ffmpeg(bs=seq.bitstream, out=Path(tmp) / "ff.yuv"):
                    subprocess.run(decode_command(ff.path, CODECS["hevc"], bs, out), check=True,
                                   capture_output=True)

                base = best_of(plain, args.repeats)
                for what, fn in (("libde265 decode (baseline)", None), ("+ drawings", drawn),
                                 ("+ depth and QP planes", full),
                                 ("FFmpeg hevc decode (process)", ffmpeg)):
                    t = base if fn is None else best_of(fn, args.repeats)
                    rows.append((f"{sample} {seq.width}x{seq.height}", config.upper(), what,
                                 1000 * t / n, t / base))
    print(f"HEVC depth/QP maps, x265 QP {args.qp}, {args.frames} frames, best of "
          f"{args.repeats}, libde265 {libde265.libde265_version()}\n")
    print("| content | config | step | ms/frame | × baseline |")
    print("|---|---|---|---:|---:|")
    for content, config, what, ms, ratio in rows:
        print(f"| {content} | {config} | {what} | {ms:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
