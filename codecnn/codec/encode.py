"""`codecnn encode`: one source, several fixed QPs, real bitstreams and reconstructions.

Layout written under `out_dir`:

    <source>/original.yuv                         the original, 10-bit 4:2:0, written once
    <source>/<codec>-<config>/qp<QP>/bitstream.266  the elementary stream (VVC Annex B)
    <source>/<codec>-<config>/qp<QP>/rec.yuv        its decode by FFmpeg's native decoder
    <source>/<codec>-<config>/qp<QP>/manifest.json  CodedSequence: per-picture POC/type/slice
                                                    QP/bits, versions, the exact commands

`<codec>-<config>` is vvc-ai, vvc-ra, hevc-ai or hevc-ra: All Intra and Random Access codes of
one source at one QP live side by side (their original is the same file).

Every file is written under a temporary name and renamed when complete. The encoder reads
`original.yuv` itself, so what is compared later is exactly what was coded.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codecnn import __version__
from codecnn.codec.codecs import CodecSpec, get_codec
from codecnn.codec.commands import decode_command, encode_command, trace_command
from codecnn.codec.ffmpeg import FFmpeg, encoder_version, find_ffmpeg, run
from codecnn.codec.manifest import CodedSequence, save_manifest
from codecnn.codec.probe import probe_stream, probe_video
from codecnn.codec.samples import find_sample
from codecnn.errors import CodecError, DataError, YuvFormatError
from codecnn.io.atomic import atomic_output, new_directory, remove_stale_temporaries
from codecnn.io.parallel import map_threads
from codecnn.io.yuv import (
    YuvFormat,
    YuvWriter,
    convert_bit_depth,
    open_yuv,
    parse_yuv_name,
    resolve_format,
)

RAW_SUFFIXES = (".yuv", ".raw")
ORIGINAL_FORMAT_BITS = 10


@dataclass(frozen=True)
class Original:
    """The 10-bit 4:2:0 original a source was turned into."""

    path: Path
    format: YuvFormat
    frames: int
    fps: str  # FFmpeg rate syntax, e.g. "30000/1001"
    commands: dict[str, list[str]]

    @property
    def fps_value(self) -> float:
        num, _, den = self.fps.partition("/")
        return float(num) / float(den or 1)


def qp_dir(out_dir: str | os.PathLike, source: str, codec: str, config: str, qp: int) -> Path:
    """Where `encode` writes one (source, codec, configuration, QP): the one place that
    knows the layout."""
    return Path(out_dir) / source / f"{codec}-{config}" / f"qp{qp}"


def _is_raw(path: Path, size: tuple[int, int] | None) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES or size is not None


def _fps_text(fps: float | str | None, default: str = "30") -> str:
    if fps is None:
        return default
    if isinstance(fps, str):
        if not re.fullmatch(r"\d+(\.\d+)?(/[1-9]\d*)?", fps) or float(fps.split("/")[0]) <= 0:
            raise CodecError(f"frame rate must look like 50, 29.97 or 30000/1001, got {fps!r}")
        return fps
    if fps <= 0:
        raise CodecError(f"frame rate must be positive, got {fps}")
    return str(int(fps)) if float(fps).is_integer() else f"{fps:.6g}"


# Demuxers/decoders that turn text into pictures (FFmpeg's tty demuxer renders any .txt or
# .ans file as a 640×400 terminal screen): never a source a codec researcher means.
TEXT_CODECS = ("ansi", "bintext", "xbin", "idf", "tty")
ALPHA_MODES = ("black", "white", "drop")
# How each --alpha mode flattens: over black is the premultiplied picture; over white the
# same on the negated picture, negated back (negate leaves alpha alone).
_ALPHA_FILTERS = {
    "black": "format=rgba,premultiply=inplace=1",
    "white": "format=rgba,negate,premultiply=inplace=1,negate",
    "drop": None,
}


def has_alpha(pix_fmt: str) -> bool:
    """True for FFmpeg pixel formats that carry an alpha plane (rgba, yuva420p, ya8, ...)."""
    return (pix_fmt.startswith(("yuva", "ya", "gbrap", "rgba", "bgra", "argb", "abgr"))
            or pix_fmt in ("pal8a",))


def check_picture_input(ff: str, in_args: list[str], path: Path,
                        alpha: str | None) -> str | None:
    """Refuse inputs that are not pictures, and pictures with alpha unless `alpha` says how
    to flatten them; returns the filter that flattens (None: none needed)."""
    demuxer, codec, pix_fmt = probe_stream(ff, in_args, path)
    if codec in TEXT_CODECS or demuxer.split(",")[0] == "tty":
        raise CodecError(f"{path}: is text (FFmpeg would render it as a {codec} terminal "
                         "screen), not a video or image")
    if alpha is not None and alpha not in ALPHA_MODES:
        raise CodecError(f"--alpha must be one of {', '.join(ALPHA_MODES)}, got {alpha!r}")
    if has_alpha(pix_fmt):
        if alpha is None:
            raise CodecError(f"{path}: has an alpha channel ({pix_fmt}); its hidden colours "
                             "would be coded: pass --alpha black|white to flatten it over "
                             "that colour, or --alpha drop to code the colours as they are")
        return _ALPHA_FILTERS[alpha]
    return None


def _vf(scale: tuple[int, int] | None, crop: tuple[int, int] | None,
        select: str | None = None, first: str | None = None) -> list[str]:
    filters = [first] if first else []
    if select:
        filters.append(f"select='{select}'")
    if scale:
        filters.append(f"scale={scale[0]}:{scale[1]}")
    if crop:
        filters.append(f"crop={crop[0]}:{crop[1]}:0:0")
    return ["-vf", ",".join(filters)] if filters else []


def _check_even(path: Path, w: int, h: int) -> None:
    if w % 2 or h % 2:
        raise CodecError(
            f"{path}: {w}x{h} has an odd width or height; VVC codes 4:2:0 in whole chroma "
            f"samples only: crop it, e.g. --crop {w - w % 2}x{h - h % 2}")


def _raw_to_original(path: Path, fmt: YuvFormat, frames: int | None,
                     crop: tuple[int, int] | None, dst: Path) -> tuple[YuvFormat, int]:
    """Copy a raw YUV file as 10-bit 4:2:0 (x << 2 for 8 bit, mid-grey chroma for 4:0:0)."""
    reader = open_yuv(path, fmt)
    n = len(reader) if frames is None else min(frames, len(reader))
    w, h = crop if crop else (fmt.width, fmt.height)
    if w > fmt.width or h > fmt.height:
        raise YuvFormatError(f"{path}: crop {w}x{h} is larger than {fmt.width}x{fmt.height}")
    _check_even(path, w, h)
    out = YuvFormat(w, h, ORIGINAL_FORMAT_BITS, "420")
    with YuvWriter(dst, out) as wr:
        for k in range(n):
            planes = reader.planes(k)
            top = max(int(p.max()) for p in planes)
            if top > fmt.peak:
                raise YuvFormatError(f"{path}: frame {k} has sample value {top}, above "
                                     f"{fmt.bit_depth}-bit (big-endian or 16-bit data?)")
            y = convert_bit_depth(planes[0][:h, :w], fmt.bit_depth, 10)
            if fmt.chroma == "400":
                wr.write_luma(y)
                continue
            ch, cw = out.plane_shapes[1]
            wr.write([y] + [convert_bit_depth(p[:ch, :cw], fmt.bit_depth, 10)
                            for p in planes[1:]])
    return out, n


def prepare_original(input_path: str | os.PathLike, dst: str | os.PathLike, ff: FFmpeg,
                     frames: int | None = None, size: tuple[int, int] | None = None,
                     bit_depth: int | None = None, chroma: str | None = None,
                     fps: float | str | None = None, crop: tuple[int, int] | None = None,
                     scale: tuple[int, int] | None = None,
                     select: str | None = None, alpha: str | None = None) -> Original:
    """Turn INPUT into a 10-bit 4:2:0 raw file at `dst` (atomically).

    INPUT is a raw .yuv (format from size/bit_depth/chroma or its name; copied exactly, 8-bit
    samples shifted left by 2) or anything FFmpeg reads (video, image; converted by FFmpeg).
    `select` (an FFmpeg select expression over the input frame number n, e.g.
    `between(n,100,131)`), then `scale`, then `crop` (top-left W×H) are applied; frames is the
    maximum frame count after selection. A picture with alpha is refused unless `alpha`
    (black, white: composited over that colour; drop: its colours as they are) says how
    to flatten it.
    """
    path = Path(input_path)
    dst = Path(dst)
    if not path.exists():
        raise DataError(f"{path}: no such file (nor the name of a shipped sample: see "
                        "`codecnn samples`)")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a video, image or YUV file")
    if frames is not None and frames < 1:
        raise CodecError(f"--frames must be at least 1, got {frames}")
    commands: dict[str, list[str]] = {}
    if _is_raw(path, size):
        fmt = resolve_format(path, *(size or (None, None)), bit_depth, chroma)
        rate = _fps_text(fps, _fps_text(_name_fps(path)))
        if scale is None and select is None:  # exact copy in numpy; YuvWriter: atomic
            fmt10, n = _raw_to_original(path, fmt, frames, crop, dst)
            return Original(dst, fmt10, n, rate, commands)
        open_yuv(path, fmt)  # a truncated file is an error before FFmpeg sees it
        in_args = ["-f", "rawvideo", "-pix_fmt", fmt.pix_fmt, "-video_size",
                   f"{fmt.width}x{fmt.height}", "-framerate", rate, "-i", str(path)]
        flatten = None
    else:
        in_args = ["-i", str(path)]
        rate = None
        flatten = check_picture_input(ff.path, in_args, path, alpha)
    vf = _vf(scale, crop, select, flatten)
    w, h, probed_rate = probe_video(ff.path, in_args, vf, path)
    rate = rate or (_fps_text(fps) if fps is not None else probed_rate)
    _check_even(path, w, h)
    fmt10 = YuvFormat(w, h, ORIGINAL_FORMAT_BITS, "420")
    cmd = [ff.path, "-hide_banner", "-nostdin", "-y", *in_args,
           *(["-frames:v", str(frames)] if frames else []), *vf,
           "-fps_mode", "passthrough",  # every decoded frame once: no rate-driven dup/drop
           "-pix_fmt", fmt10.pix_fmt, "-f", "rawvideo"]
    commands["convert"] = cmd + [str(dst)]
    with atomic_output(dst) as tmp:
        run(cmd + [str(tmp)], f"{path}: converting to 10-bit 4:2:0")
        n = fmt10.num_frames(tmp.stat().st_size, path)
        if n == 0:
            raise CodecError(f"{path}: FFmpeg decoded no frames from it")
    return Original(dst, fmt10, n, rate, commands)


def _name_fps(path: Path) -> float | None:
    return parse_yuv_name(path).fps


def _same_file(a: Path, b: Path, chunk: int = 1 << 22) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def check_qps(qps: Sequence[int], codec: CodecSpec) -> list[int]:
    """Distinct QPs, sorted; CodecError for a QP outside 0..max_qp."""
    if not qps:
        raise CodecError("no QP given")
    for qp in qps:
        if not 0 <= int(qp) <= codec.max_qp:
            raise CodecError(f"QP {qp} is outside 0..{codec.max_qp}")
    return sorted({int(q) for q in qps})


def encode_qp(ff: FFmpeg, codec: CodecSpec, original: Original, source: str, qp: int,
              config: str, preset: str, qp_dir: Path, versions: dict[str, str],
              intra_period: int | None = None, threads: int | None = None,
              vtm_decoder: Path | None = None) -> CodedSequence:
    """Encode, trace and decode one QP; write bitstream, rec and manifest atomically.
    With `vtm_decoder` (VVC), VTM's depth and QP planes too (`codecnn.codec.vtm`)."""
    qp_dir.mkdir(parents=True, exist_ok=True)
    bs, rec, man = qp_dir / codec.bitstream_name, qp_dir / "rec.yuv", qp_dir / "manifest.json"
    fmt = original.format

    def enc(out: Path) -> list[str]:
        return encode_command(ff.path, codec, original.path, fmt, original.fps, out, qp, config,
                              preset, intra_period, threads)

    def dec(src: Path, out: Path) -> list[str]:
        return decode_command(ff.path, codec, src, out, fmt.pix_fmt)

    with atomic_output(bs) as bs_tmp, atomic_output(rec) as rec_tmp:
        run(enc(bs_tmp), f"{source} QP {qp}: encoding")
        data = bs_tmp.read_bytes()
        trace = run(trace_command(ff.path, codec, bs_tmp), f"{source} QP {qp}: reading headers")
        text = trace.stderr.decode("utf-8", "replace")
        pictures = codec.pictures(text, data)
        run(dec(bs_tmp, rec_tmp), f"{source} QP {qp}: decoding")
        got = fmt.num_frames(rec_tmp.stat().st_size, rec_tmp)
        if got != original.frames or len(pictures) != original.frames:
            raise CodecError(
                f"{source} QP {qp}: coded {original.frames} frames but decoded {got} and the "
                f"headers describe {len(pictures)}")
        settings: dict = {"encoder": codec.encoder, "decoder": codec.decoder, "preset": preset,
                          "options": codec.encoder_options(qp, config, preset, intra_period),
                          "intra_period": 1 if config == "ai" else intra_period,
                          "fps": original.fps}
        cw, ch, win = codec.coded_size(text)
        settings.update(coded_width=cw, coded_height=ch, conformance_window=list(win))
        side: dict = {}
        if codec.side_info is not None:  # maps the decoder exports (HEVC: depth and QP)
            side = codec.side_info(bs_tmp, text, rec_tmp, qp_dir, qp)
            settings.update(side.pop("settings", {}))
            versions = {**versions, **side.pop("versions", {})}
        vtm_commands: dict[str, list[str]] = {}
        if vtm_decoder is not None:  # VTM decodes it again: depth, QP, a bit-exact check
            from codecnn.codec.vtm import vtm_side_info

            side = vtm_side_info(vtm_decoder, bs_tmp, rec_tmp, qp_dir, fmt.width, fmt.height,
                                 [p.poc for p in pictures],
                                 codec.parse_trace(text, str(bs))[0].ctb_size)
            settings.update(side.pop("settings"))
            versions = {**versions, **side.pop("versions")}
            vtm_commands = {k: [str(bs) if a == str(bs_tmp) else a for a in v]
                            for k, v in side.pop("commands").items()}
    seq = CodedSequence(
        source=source, width=fmt.width, height=fmt.height, bit_depth=fmt.bit_depth,
        fps=original.fps_value, frames=original.frames, codec=codec.name, config=config, qp=qp,
        original=str(original.path), reconstruction=str(rec), bitstream=str(bs),
        bitstream_bits=8 * len(data), pictures=pictures, chroma="420",
        encoder_settings=settings, versions=dict(versions),
        commands={**original.commands, "encode": enc(bs), "decode": dec(bs, rec),
                  "trace_headers": trace_command(ff.path, codec, bs), **vtm_commands},
        **side,
    )
    save_manifest(seq, man)
    return seq


def resolve_input(input_path: str | os.PathLike) -> str | os.PathLike:
    """A file path as given, or, where no such file exists and the name is that of a shipped
    sample (`codecnn samples`: bikes, carphone_pristine, astronaut, ...), that sample's file."""
    text = str(input_path)
    if Path(text).exists() or os.sep in text or Path(text).suffix:
        return input_path
    try:
        return find_sample(text)[2]
    except DataError:
        return input_path  # reported as a missing file by prepare_original


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _codec_for(codec: str,
               vtm_decoder: str | os.PathLike | None) -> tuple[CodecSpec, Path | None]:
    """The codec's spec and the VTM decoder to trace with; with a VTM decoder the spec is the
    traceable one (VVenC without IBC, where VTM's tracing stops)."""
    spec = get_codec(codec)
    if vtm_decoder is None:
        return spec, None
    from codecnn.codec.vtm import find_vtm_decoder, traceable

    if codec != "vvc":
        raise CodecError(f"--vtm-decoder gives VVC depth; {codec} has its own or none")
    vtm_path = find_vtm_decoder(vtm_decoder)
    return traceable(spec), vtm_path


def _check_settings(spec: CodecSpec, config: str, preset: str | None, qps: Sequence[int],
                    jobs: int) -> tuple[str, list[int]]:
    """CodecError for a bad configuration, preset, QP or job count; returns the preset
    (the codec's default for None) and the checked QPs."""
    preset = preset or spec.default_preset
    if config not in ("ai", "ra"):
        raise CodecError(f"config must be ai or ra, got {config!r}")
    if preset not in spec.presets:
        raise CodecError(f"preset must be one of {', '.join(spec.presets)}, got {preset!r}")
    qps = check_qps(qps, spec)
    if jobs < 1:
        raise CodecError(f"-j must be at least 1, got {jobs}")
    return preset, qps


def _qp_dirs(out_dir: str | os.PathLike, source: str, codec: str, config: str,
             qps: list[int], overwrite: bool) -> dict[int, Path]:
    """Each QP's output directory; CodecError where one already holds a manifest and
    `overwrite` is off (checked before anything is written)."""
    dirs = {qp: qp_dir(out_dir, source, codec, config, qp) for qp in qps}
    existing = [dirs[qp] / "manifest.json" for qp in qps]
    existing = [p for p in existing if p.exists()]
    if existing and not overwrite:
        raise CodecError(f"{existing[0]} exists; pass --overwrite to encode again")
    return dirs


def _write_original(input_path: str | os.PathLike, src_dir: Path, qp_dirs: list[Path],
                    ff: FFmpeg, overwrite: bool, frames: int | None,
                    size: tuple[int, int] | None, bit_depth: int | None, chroma: str | None,
                    fps: float | str | None, crop: tuple[int, int] | None,
                    scale: tuple[int, int] | None, select: str | None,
                    alpha: str | None) -> Original:
    """Write SRC_DIR/original.yuv atomically; returns it with commands naming its final path.

    Every codec, configuration and QP of the source shares this one original, so an existing
    one with other content is an error unless `overwrite`.
    """
    orig_path = src_dir / "original.yuv"
    with new_directory(src_dir):  # a refused input leaves no empty OUT/<source>/ behind
        for d in (src_dir, *qp_dirs):
            remove_stale_temporaries(d)  # what an interrupted encode left
        with atomic_output(orig_path) as staged:
            original = prepare_original(input_path, staged, ff, frames, size, bit_depth,
                                        chroma, fps, crop, scale, select, alpha)
            if orig_path.exists() and not overwrite and not _same_file(staged, orig_path):
                raise CodecError(f"{orig_path} exists with different content (another input, "
                                 "crop or frame count); pass --overwrite or another -o/--name")
    # the commands wrote the staged name (their last argument): record the final one
    return Original(orig_path, original.format, original.frames, original.fps,
                    {k: v[:-1] + [str(orig_path)] for k, v in original.commands.items()})


def _encode_qps(ff: FFmpeg, spec: CodecSpec, original: Original, source: str,
                qps: list[int], config: str, preset: str, dirs: dict[int, Path],
                intra_period: int | None, jobs: int, progress: bool,
                vtm_decoder: Path | None) -> list[CodedSequence]:
    """encode_qp for every QP, `jobs` at a time (the CPUs shared among them); ascending QP."""
    versions = {"ffmpeg": ff.version,
                spec.encoder: encoder_version(ff.path, spec.encoder, spec.version_pattern),
                "codecnn": __version__}
    jobs = min(jobs, len(qps))
    threads = max(1, _cpus() // jobs) if jobs > 1 else None
    from tqdm import tqdm

    bar = tqdm(total=len(qps), desc=f"encode {source} {config}", unit="QP", file=sys.stderr,
               disable=None if progress else True, leave=False)
    results = map_threads(lambda qp: encode_qp(ff, spec, original, source, qp, config, preset,
                                               dirs[qp], versions, intra_period,
                                               threads, vtm_decoder), qps, jobs, bar)
    return sorted(results, key=lambda s: s.qp)


def encode_sequence(
    input_path: str | os.PathLike,
    qps: Sequence[int],
    config: str,
    frames: int | None,
    out_dir: str | os.PathLike,
    *,
    codec: str = "vvc",
    preset: str | None = None,
    size: tuple[int, int] | None = None,
    bit_depth: int | None = None,
    chroma: str | None = None,
    fps: float | str | None = None,
    crop: tuple[int, int] | None = None,
    scale: tuple[int, int] | None = None,
    name: str | None = None,
    intra_period: int | None = None,
    select: str | None = None,
    alpha: str | None = None,
    jobs: int = 1,
    ffmpeg: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    vtm_decoder: str | os.PathLike | None = None,
) -> list[CodedSequence]:
    """Encode INPUT at each QP (in parallel, `jobs` at a time); returns manifests by QP.

    Args:
        input_path: a raw .yuv (format from size/bit_depth/chroma or its name) or any file
            FFmpeg reads (video or image).
        qps: nominal QPs, each in 0..63. config: "ai" (All Intra) or "ra" (Random Access).
        frames: at most this many frames (None: all).
        out_dir: DIR of the layout in the module docstring.
        crop/scale: (W, H); scale first, then a top-left crop.
        select: FFmpeg select expression over input frame numbers n (before scale/crop),
            e.g. "not(mod(n,8))" for every 8th frame or "between(n,100,131)".
        name: the source's directory name (default: the input's stem).
        alpha: how to flatten a picture with alpha (black, white, drop); None refuses one.
        overwrite: replace existing per-QP outputs (otherwise they are an error).
        vtm_decoder: a VTM DecoderApp built with tracing (VVC only): each QP's manifest then
            points at VTM's depth and QP planes (`codecnn.codec.vtm`), VTM's decode must equal
            FFmpeg's, and VVenC codes without IBC (VTM's tracing stops at IBC CUs).
    Returns: the CodedSequence of each QP, ascending QP. Writes the layout in the module doc.
    """
    input_path = resolve_input(input_path)
    spec, vtm_path = _codec_for(codec, vtm_decoder)
    preset, qps = _check_settings(spec, config, preset, qps, jobs)
    ff = find_ffmpeg(ffmpeg, spec.encoder, spec.decoder, "trace_headers")
    if spec.check is not None:
        spec.check()
    source = name or Path(input_path).stem
    dirs = _qp_dirs(out_dir, source, codec, config, qps, overwrite)
    original = _write_original(input_path, Path(out_dir) / source, list(dirs.values()), ff,
                               overwrite, frames, size, bit_depth, chroma, fps, crop, scale,
                               select, alpha)
    return _encode_qps(ff, spec, original, source, qps, config, preset, dirs, intra_period,
                       jobs, progress, vtm_path)


@dataclass(frozen=True)
class QpSummary:
    """Rate and quality of one coded sequence: kbit/s of the real bitstream, mean PSNR-Y."""

    source: str
    qp: int
    kbps: float
    psnr_y: float
    slice_qps: tuple[int, ...]
    manifest: str | None = None


def summarize(seq: CodedSequence) -> QpSummary:
    """Bitrate and per-frame PSNR-Y (peak 1023) averaged over frames of a coded sequence."""
    from codecnn.io.metrics import psnr

    fmt = YuvFormat(seq.width, seq.height, seq.bit_depth, seq.chroma)
    orig, rec = open_yuv(seq.original, fmt), open_yuv(seq.reconstruction, fmt)
    vals = [psnr(orig.luma(k), rec.luma(k), seq.bit_depth) for k in range(seq.frames)]
    finite = [v for v in vals if math.isfinite(v)]
    mean = sum(finite) / len(finite) if finite else math.inf
    return QpSummary(seq.source, seq.qp, seq.bitrate_kbps, mean, tuple(seq.slice_qps))


def format_table(rows: Sequence[QpSummary]) -> str:
    """A Markdown table: source, QP, kbit/s, PSNR-Y, slice QPs seen in the headers."""
    lines = ["| source | QP | kbit/s | PSNR-Y (dB) | slice QPs |", "|---|---:|---:|---:|---|"]
    for r in rows:
        qs = sorted(set(r.slice_qps))
        qtxt = str(qs[0]) if len(qs) == 1 else f"{qs[0]}..{qs[-1]}"
        lines.append(f"| {r.source} | {r.qp} | {r.kbps:.1f} | {r.psnr_y:.2f} | {qtxt} |")
    return "\n".join(lines)
