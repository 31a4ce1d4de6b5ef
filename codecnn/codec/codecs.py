"""The codec table: what encode, decode and header parsing need to know about each codec.

`CODECS` maps a codec name to a `CodecSpec`: which FFmpeg encoder/decoder/muxer it needs,
how to turn (QP, config, preset) into encoder options (`codecnn.codec.commands`), and how
to read per-picture POC, slice type, slice QP and bits from its bitstream (`vvc`, `hevc`:
the same functions in both). Adding a codec is its options in `commands`, one module with
its header rules, and one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codecnn.codec import commands, hevc, hevc_maps, libde265, vvc
from codecnn.codec.bitstream import CodedPicture, Sps
from codecnn.codec.ffmpeg import run
from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError


@dataclass(frozen=True)
class CodecSpec:
    """What encode/decode/header parsing need to know about one codec.

    encoder_options(qp, config, preset, intra_period) -> FFmpeg options after `-c:v ENCODER`.
    parse_trace(trace_headers_text, name) -> (first SPS, pictures in decoding order).
    pictures(trace_headers_text, bitstream_bytes) -> PictureInfo per picture, output order.
    coded_size(trace_headers_text) -> (coded width, coded height, conformance window l/r/t/b).
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
    parse_trace: Callable[[str, str], tuple[Sps, list[CodedPicture]]]
    pictures: Callable[[str, bytes], list[PictureInfo]]
    coded_size: Callable[[str], tuple[int, int, tuple[int, int, int, int]]]
    version_pattern: str | None = None  # regex, group 1 = encoder version in FFmpeg's log
    max_qp: int = 63
    side_info: Callable[[Path, str, Path, Path, int], dict[str, Any]] | None = None
    check: Callable[[], Any] | None = None


CODECS: dict[str, CodecSpec] = {
    "vvc": CodecSpec(
        name="vvc", encoder="libvvenc", decoder="vvc", muxer="vvc",
        bitstream_name="bitstream.266", presets=commands.VVENC_PRESETS,
        default_preset="faster", encoder_options=commands.vvenc_options,
        parse_trace=vvc.parse_trace, pictures=vvc.picture_infos, coded_size=vvc.coded_size,
    ),
    "hevc": CodecSpec(
        name="hevc", encoder="libx265", decoder="hevc", muxer="hevc",
        bitstream_name="bitstream.265", presets=commands.X265_PRESETS,
        default_preset="medium", encoder_options=commands.x265_options,
        parse_trace=hevc.parse_trace, pictures=hevc.picture_infos, coded_size=hevc.coded_size,
        version_pattern=r"HEVC encoder version (\S+)",  # x265's log line when FFmpeg opens it
        max_qp=hevc.MAX_QP, side_info=hevc_maps.libde265_side_info,
        check=libde265.find_libde265,
    ),
}


def get_codec(name: str) -> CodecSpec:
    """The table entry of `name`; CodecError naming the known codecs otherwise."""
    try:
        return CODECS[name]
    except KeyError:
        raise CodecError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from None


def read_headers(ffmpeg: str, codec: str, bitstream: str | os.PathLike
                 ) -> tuple[Sps, list[CodedPicture]]:
    """Run trace_headers on a bitstream file and parse it: (first SPS, pictures in decoding
    order)."""
    spec = get_codec(codec)
    proc = run(commands.trace_command(ffmpeg, spec, bitstream), f"{bitstream}: reading headers")
    return spec.parse_trace(proc.stderr.decode("utf-8", "replace"), str(bitstream))
