"""What FFmpeg makes of an input file, asked in one place.

Three questions, each answered by the cheapest FFmpeg run that knows: the container and
pixel format from FFmpeg's input dump (`probe_stream`, to refuse text and alpha), the size
and rate of the pictures it would decode from a one-frame Y4M header after any filters
(`probe_video`), and the frame count from a stream copy to nowhere (`probe_copy`, no
decoding).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from codecnn.codec.ffmpeg import run
from codecnn.errors import CodecError


def probe_stream(ff: str, in_args: list[str], path: Path) -> tuple[str, str, str]:
    """(demuxer, codec, pixel format) of the first video stream, from FFmpeg's input dump."""
    proc = subprocess.run([ff, "-hide_banner", "-nostdin", *in_args], capture_output=True)
    text = proc.stderr.decode("utf-8", "replace")
    demuxer = re.search(r"^Input #0, ([\w,]+), from", text, re.M)
    stream = re.search(r"Stream #0:\d+.*?: Video: (\w+)[^,]*, (\w+)", text)
    if not demuxer or not stream:
        raise CodecError(f"{path}: FFmpeg cannot read it as a video or image")
    return demuxer.group(1), stream.group(1), stream.group(2)


def probe_video(ff: str, in_args: list[str], vf: list[str], path: Path) -> tuple[int, int, str]:
    """(width, height, rate) of what FFmpeg makes of the input, from a 1-frame Y4M header."""
    cmd = [ff, "-hide_banner", "-nostdin", "-loglevel", "error", *in_args, "-frames:v", "1",
           *vf, "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"]
    out = run(cmd, f"{path}: FFmpeg cannot read it as a video or image").stdout
    header = out.split(b"\n", 1)[0].decode("ascii", "replace")
    w = re.search(r" W(\d+)", header)
    h = re.search(r" H(\d+)", header)
    f = re.search(r" F(\d+):(\d+)", header)
    if not (header.startswith("YUV4MPEG2") and w and h):
        raise CodecError(f"{path}: FFmpeg found no video frames in it")
    rate = f"{f.group(1)}/{f.group(2)}" if f and int(f.group(2)) else "25"
    return int(w.group(1)), int(h.group(1)), rate


def probe_copy(ff: str, path: Path) -> tuple[int, int, str, int]:
    """(width, height, rate, frames) of the first video stream, from a stream copy to nowhere
    (no decoding). rate is FFmpeg's rate syntax ("30000/1001" for 29.97)."""
    cmd = [ff, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
           "-f", "null", "-"]
    err = run(cmd, f"{path}: probing").stderr.decode("utf-8", "replace")
    stream = next((ln for ln in err.splitlines() if "Video:" in ln), "")
    size = re.search(r"[ ,](\d{1,5})x(\d{1,5})[ ,\[]", stream + " ")
    if not size:
        raise CodecError(f"{path}: FFmpeg reports no video stream size")
    rate = re.search(r"(\d+(?:\.\d+)?) fps", stream)
    frames = re.findall(r"frame=\s*(\d+)", err)
    fps = rate.group(1) if rate else "25"
    if fps == "29.97":
        fps = "30000/1001"
    return (int(size.group(1)), int(size.group(2)), fps,
            int(frames[-1]) if frames else 1)
