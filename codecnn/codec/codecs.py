"""The codec table and the FFmpeg command lines, built by pure functions.

`CODECS` maps a codec name to a `CodecSpec`: which FFmpeg encoder/decoder/muxer it needs,
how to turn (QP, config, preset) into encoder options, and how to read per-picture POC,
slice type, slice QP and bits from its bitstream. Adding a codec is one module with its
options and header reader, and one entry here.

Every command is a `list[str]` (no shell); `codecnn.codec.ffmpeg.run` executes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codecnn.codec import headers, hevc, libde265, vvc
from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError
from codecnn.io.yuv import YuvFormat


@dataclass(frozen=True)
class CodecSpec:
    """What encode/decode/header parsing need to know about one codec.

    encoder_options(qp, config, preset, intra_period) -> FFmpeg options after `-c:v ENCODER`.
    pictures(trace_headers_text, bitstream_bytes) -> PictureInfo per picture, output order.
    side_info(bitstream, trace_text, rec, qp_dir, qp) -> {"depth_map", "depth_map_format",
        "qp_map", "qp_map_format", "settings", "versions"}: maps a decoder can export, written
        into qp_dir after the reconstruction (HEVC: libde265); None where there are none.
    check() -> None: raises CodecError before any encoding when something the codec needs
        besides FFmpeg is missing (HEVC: the libde265 library).
    """

    name: str
    encoder: str
    decoder: str
    muxer: str
    bitstream_name: str
    presets: tuple[str, ...]
    # The preset every command uses unless told otherwise (encode, corpus, demo): VVenC's
    # "faster" codes 5-10× faster than "medium" for about 5 % more rate; x265's "medium" is
    # already fast and keeps 64×64 CTBs (ultrafast/superfast code 32×32).
    default_preset: str
    encoder_options: Callable[[int, str, str, int | None], list[str]]
    pictures: Callable[[str, bytes], list[PictureInfo]]
    version_pattern: str | None = None  # regex, group 1 = encoder version in FFmpeg's log
    max_qp: int = 63
    # trace text -> (coded width, coded height, conformance window l/r/t/b), or None
    coded_size: Callable[[str], tuple[int, int, tuple[int, int, int, int]]] | None = None
    side_info: Callable[[Path, str, Path, Path, int], dict[str, Any]] | None = None
    check: Callable[[], Any] | None = None


CODECS: dict[str, CodecSpec] = {
    "vvc": CodecSpec(
        name="vvc", encoder="libvvenc", decoder="vvc", muxer="vvc",
        bitstream_name="bitstream.266", presets=vvc.PRESETS, default_preset="faster",
        encoder_options=vvc.vvenc_options, pictures=headers.picture_infos,
        coded_size=headers.coded_size,
    ),
    "hevc": CodecSpec(
        name="hevc", encoder="libx265", decoder="hevc", muxer="hevc",
        bitstream_name=hevc.BITSTREAM_NAME, presets=hevc.PRESETS, default_preset="medium",
        encoder_options=hevc.x265_options, pictures=hevc.picture_infos,
        version_pattern=hevc.VERSION_PATTERN, max_qp=hevc.MAX_QP,
        side_info=hevc.libde265_side_info, check=libde265.find_libde265,
    ),
}


def get_codec(name: str) -> CodecSpec:
    try:
        return CODECS[name]
    except KeyError:
        raise CodecError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from None


def _p(path: str | os.PathLike) -> str:
    return os.fspath(path)


def encode_command(ffmpeg: str, codec: CodecSpec, src: str | os.PathLike, fmt: YuvFormat,
                   fps: str, out: str | os.PathLike, qp: int, config: str, preset: str,
                   intra_period: int | None = None, threads: int | None = None) -> list[str]:
    """Encode a raw YUV file (`fmt`, 10-bit 4:2:0 here) at a fixed QP into an elementary
    stream. `fps` is FFmpeg's rate syntax ('30000/1001' or '25')."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", fmt.pix_fmt,
           "-video_size", f"{fmt.width}x{fmt.height}", "-framerate", fps, "-i", _p(src),
           "-c:v", codec.encoder, *codec.encoder_options(qp, config, preset, intra_period)]
    if threads:
        cmd += ["-threads", str(int(threads))]
    return cmd + ["-f", codec.muxer, _p(out)]


def decode_command(ffmpeg: str, codec: CodecSpec, bitstream: str | os.PathLike,
                   out: str | os.PathLike, pix_fmt: str = "yuv420p10le",
                   threads: int | None = None) -> list[str]:
    """Decode an elementary stream with the codec's native FFmpeg decoder to raw YUV."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-f", codec.muxer, "-c:v", codec.decoder]
    if threads:
        cmd += ["-threads", str(int(threads))]
    return cmd + ["-i", _p(bitstream), "-f", "rawvideo", "-pix_fmt", pix_fmt, _p(out)]


def trace_command(ffmpeg: str, codec: CodecSpec, bitstream: str | os.PathLike) -> list[str]:
    """Print every header syntax element (to stderr) without decoding: trace_headers."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", "-f", codec.muxer,
            "-i", _p(bitstream), "-c:v", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]
