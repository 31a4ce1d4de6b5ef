"""Every FFmpeg command line codecnn codes with, built by pure functions (`list[str]`).

A leaf: it imports no other codec module, so the codec table (`codecnn.codec.codecs`) and
the bitstream readers can all use it. `codecnn.codec.ffmpeg.run` executes the commands.

Fixed QP, VVC (VVenC). With `-qpa 0` (no perceptual QP adaptation) and
`IntraQPOffset=0:GOPQPA=0:BIM=0` VVenC disables CU QP deltas (pps_cu_qp_delta_enabled_flag
= 0): every CU of a picture has its slice QP. In All Intra (`IntraPeriod=1`) every slice QP
is then the nominal QP, as in the JVET common test conditions; VVenC's defaults would shift
it by 1-5 steps. In Random Access the intra pictures carry the nominal QP and the others the
GOP hierarchy's QP offsets. (`MaxDeltaQP` is refused by VVenC once BIM is off, so it is
never passed.)

Fixed QP, HEVC (x265). Every source of QP variation off (`aq-mode=0`: no adaptive
quantisation, so cu_qp_delta_enabled_flag is 0; `cutree=0`; `ipratio=1`/`pbratio=1`: no
offsets between I, P and B pictures), All Intra (`keyint=1`) or Random Access (fixed GOP of
`bframes=3` with `b-adapt=0`, `b-pyramid`, closed GOPs, an IRAP every `intra_period`
pictures). Every CU of every picture then has the nominal QP.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from codecnn.errors import CodecError
from codecnn.io.yuv import YuvFormat

CONFIGS = ("ai", "ra")
VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
VVENC_FIXED_QP = ("IntraQPOffset=0", "GOPQPA=0", "BIM=0")
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
X265_DEFAULT_INTRA_PERIOD = 32


class FFmpegCodec(Protocol):
    """What a command line needs of a codec (`codecnn.codec.codecs.CodecSpec` has it)."""

    encoder: str  # FFmpeg encoder name, e.g. libvvenc
    decoder: str  # FFmpeg decoder name, e.g. vvc
    muxer: str  # elementary-stream (de)muxer, e.g. vvc
    encoder_options: Callable[[int, str, str, int | None], list[str]]


def vvenc_params(config: str, intra_period: int | None = None) -> str:
    """The `-vvenc-params` string: fixed-QP settings plus the intra period of `config`.

    ai: IntraPeriod=1 (every picture intra). ra: VVenC's random-access GOP (up to 32
    pictures, hierarchical B) with POC0IDR=1, so that picture 0 is the IDR as in the JVET
    common test conditions (VVenC otherwise codes the first pictures as leading pictures of
    an IDR at the end of the first GOP); IntraPeriod=`intra_period` when given, else VVenC's
    default of about one second (32 pictures at 30 fps).
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    params = list(VVENC_FIXED_QP)
    if config == "ai":
        params.append("IntraPeriod=1")
    else:
        params.append("POC0IDR=1")
        if intra_period is not None:
            params.append(f"IntraPeriod={int(intra_period)}")
    return ":".join(params)


def vvenc_options(qp: int, config: str, preset: str = "medium",
                  intra_period: int | None = None) -> list[str]:
    """FFmpeg options after `-c:v libvvenc` for a fixed-QP encode."""
    if preset not in VVENC_PRESETS:
        raise ValueError(f"preset must be one of {VVENC_PRESETS}, got {preset!r}")
    return ["-preset", preset, "-qp", str(int(qp)), "-qpa", "0",
            "-vvenc-params", vvenc_params(config, intra_period)]


def x265_params(config: str, intra_period: int | None = None) -> str:
    """The -x265-params string for a fixed-QP encode in which every CU has the nominal QP.

    ra: an IRAP every `intra_period` pictures (default X265_DEFAULT_INTRA_PERIOD),
    hierarchical B in fixed groups of 4 (bframes=3, b-adapt=0), closed GOPs.
    """
    if config not in CONFIGS:
        raise CodecError(f"HEVC config must be one of {', '.join(CONFIGS)}, got {config!r}")
    common = ["aq-mode=0", "cutree=0", "ipratio=1", "pbratio=1", "scenecut=0", "info=0"]
    period = X265_DEFAULT_INTRA_PERIOD if intra_period is None else int(intra_period)
    if config == "ai":
        gop = ["keyint=1", "min-keyint=1"]
    else:
        gop = [f"keyint={period}", f"min-keyint={period}", "bframes=3", "b-adapt=0",
               "b-pyramid=1", "open-gop=0"]
    return ":".join(gop + common)


def x265_options(qp: int, config: str, preset: str = "medium",
                 intra_period: int | None = None) -> list[str]:
    """FFmpeg options after `-c:v libx265` for a fixed-QP encode."""
    if preset not in X265_PRESETS:
        raise CodecError(f"x265 preset must be one of {', '.join(X265_PRESETS)}, "
                         f"got {preset!r}")
    return ["-preset", preset, "-qp", str(int(qp)),
            "-x265-params", x265_params(config, intra_period)]


def _p(path: str | os.PathLike) -> str:
    return os.fspath(path)


def encode_command(ffmpeg: str, codec: FFmpegCodec, src: str | os.PathLike, fmt: YuvFormat,
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


def decode_command(ffmpeg: str, codec: FFmpegCodec, bitstream: str | os.PathLike,
                   out: str | os.PathLike, pix_fmt: str = "yuv420p10le",
                   threads: int | None = None) -> list[str]:
    """Decode an elementary stream with the codec's native FFmpeg decoder to raw YUV."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-f", codec.muxer, "-c:v", codec.decoder]
    if threads:
        cmd += ["-threads", str(int(threads))]
    return cmd + ["-i", _p(bitstream), "-f", "rawvideo", "-pix_fmt", pix_fmt, _p(out)]


def trace_command(ffmpeg: str, codec: FFmpegCodec, bitstream: str | os.PathLike) -> list[str]:
    """Print every header syntax element (to stderr) without decoding: trace_headers."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", "-f", codec.muxer,
            "-i", _p(bitstream), "-c:v", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"]
