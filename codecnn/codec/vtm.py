"""VVC CU depth and QP from the reference decoder: VTM's DecoderApp with tracing in the loop.

FFmpeg's VVC decoder exports no partitioning, but every VVC researcher has VTM's source, and
a DecoderApp built with `cmake -DENABLE_TRACING=ON` (tools/build_vtm.sh) writes VTM's block
statistics. After FFmpeg's decode, `vtm_side_info` runs DecoderApp on the same bitstream:

    DecoderApp -b bitstream.266 -d 10 -o <tmp>.yuv --TraceFile=<tmp>.vtmbmsstats
               --TraceRule=D_BLOCK_STATISTICS_ALL:poc>=0

1. VTM's reconstruction must equal FFmpeg's `rec.yuv` bit for bit (a free conformance
   check of both decoders); a mismatch is a CodecError naming the first differing picture.
2. The trace becomes per-picture depth and QP planes in the raw-plane format the HEVC path
   writes (`depth.raw`, `qp.raw`: one uint8 plane per output picture at luma resolution),
   and the manifest points at them, so `extract` fills `depth` with no flags.
3. The trace is kept with only the statistics a reader of depth and QP needs
   (`vtm_blockstats.vtmbmsstats`: Depth, QT/BT/MT_Depth, QP and their `_Chroma` twins),
   so YUView opens it over rec.yuv and `--depth-map ... vtm-trace` reads it.

What "depth" is: VTM's `Depth` statistic, `cu.depth`, the number of splits (quadtree and
multi-type tree together) from the CTU to the CU, so it counts from the CTU size the
stream's SPS sets: VVenC's `faster` preset (codecnn's default) codes 64×64 CTUs, where an
unsplit 64×64 CU has depth 0; `medium` and slower code 128×128 CTUs, where a 64×64 CU has
depth 1. The manifest records the CTU size beside the depth. Dual-tree I slices
(`sps_qtbtt_dual_tree_intra_flag`, on in VVenC's intra pictures) split a 128×128 CTU
implicitly into 64×64 luma and chroma trees; VTM counts that split (a quadtree-only 32×32
luma CU has depth 2 in dual and single trees alike, seen on VTM 23.13), so within one CTU
size depth means the same in I and B slices. What differs there is that the chroma tree has
its own partitioning: its `*_Chroma` statistics are kept in the trace but never used as
depth, which is the luma tree's.

VTM's tracing handles intra and inter CUs only: on an IBC CU it throws "Invalid prediction
mode". `traceable` turns IBC off in VVenC's options for sequences meant for VTM depth.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.errors import CodecError
from codecnn.io.atomic import atomic_output, temporary_sibling
from codecnn.io.yuv import YuvFormat, YuvReader

ENV = "CODECNN_VTM_DECODER"
TRACE_RULE = "D_BLOCK_STATISTICS_ALL:poc>=0"
DEPTH_NAME, QP_NAME = "depth.raw", "qp.raw"
BLOCKSTATS_NAME = "vtm_blockstats.vtmbmsstats"
MAP_FORMAT = {"kind": "raw", "granularity": 1}
# The statistics kept in the trace file: depth and QP of both trees.
KEPT_STATISTICS = ("Depth", "QT_Depth", "BT_Depth", "MT_Depth", "QP",
                   "Depth_Chroma", "QT_Depth_Chroma", "BT_Depth_Chroma", "MT_Depth_Chroma",
                   "QP_Chroma")
TRACING_HINT = ("rebuild DecoderApp with tracing: cmake -DENABLE_TRACING=ON "
                "(tools/build_vtm.sh VTM_SOURCE_DIR)")
DEPTH_SOURCE = ("VTM block statistics `Depth` (cu.depth): QT + MTT splits from the CTU to the "
                "luma CU (the luma tree in dual-tree I slices)")
DEPTH_NOTE = ("depth counts from the CTU (ctu_size): an unsplit CTU-sized CU has depth 0; "
              "a 128x128 CTU's implicit 64x64 split in dual-tree I slices counts as one")
_VERSION = re.compile(r"VTM Decoder Version (\S+)")


class IbcNotTraceable(CodecError):
    """VTM's tracing stopped at an IBC CU: the sequence must be coded again without IBC."""


def find_vtm_decoder(path: str | os.PathLike | None = None) -> Path | None:
    """The DecoderApp to run: `path`, else $CODECNN_VTM_DECODER, else None (no VTM depth).

    CodecError when the one named is not an executable file.
    """
    text = os.fspath(path) if path is not None else os.environ.get(ENV) or None
    if text is None:
        return None
    found = shutil.which(text)
    if found is None:
        where = f"{text} (from ${ENV})" if path is None else text
        raise CodecError(f"{where}: no such executable VTM DecoderApp (build one with "
                         "tools/build_vtm.sh VTM_SOURCE_DIR)")
    return Path(found).resolve()


def configured_decoder(path: str | os.PathLike | None, codec: str) -> Path | None:
    """The DecoderApp a command uses for `codec`: VVC takes `path` or $CODECNN_VTM_DECODER;
    other codecs take none (an explicit `path` for them is a CodecError)."""
    if codec != "vvc":
        if path is not None:
            raise CodecError(f"--vtm-decoder gives VVC depth; {codec} has its own or none")
        return None
    return find_vtm_decoder(path)


def vtm_decode_command(decoder: str | os.PathLike, bitstream: str | os.PathLike,
                       rec: str | os.PathLike, trace: str | os.PathLike) -> list[str]:
    """DecoderApp decoding `bitstream` to 10-bit YUV `rec` with every CU's block statistics
    in `trace` (a pure function)."""
    return [os.fspath(decoder), "-b", os.fspath(bitstream), "-d", "10", "-o", os.fspath(rec),
            f"--TraceFile={os.fspath(trace)}", f"--TraceRule={TRACE_RULE}"]


def without_ibc(options: Sequence[str]) -> list[str]:
    """VVenC's FFmpeg options with IBC off (VTM's tracing stops at an IBC CU)."""
    out = list(options)
    if "-vvenc-params" in out:
        i = out.index("-vvenc-params") + 1
        out[i] = f"{out[i]}:IBC=0" if out[i] else "IBC=0"
    else:
        out += ["-vvenc-params", "IBC=0"]
    return out


def traceable(spec):
    """The VVC CodecSpec with IBC off, for sequences whose depth comes from VTM."""
    base = spec.encoder_options
    return replace(spec, encoder_options=lambda *a: without_ibc(base(*a)))


def run_vtm(decoder: str | os.PathLike, bitstream: str | os.PathLike, rec: str | os.PathLike,
            trace: str | os.PathLike) -> str:
    """Run DecoderApp; returns its output (stdout + stderr). CodecError in one line when it
    has no tracing, stops, or writes no block statistics."""
    cmd = vtm_decode_command(decoder, bitstream, rec, trace)
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise CodecError(f"{decoder}: cannot run it ({e.strerror})") from None
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    if "Unknown option `TraceFile'" in text or "Unknown option `TraceRule'" in text:
        raise CodecError(f"{decoder}: this DecoderApp was built without tracing and writes "
                         f"no block statistics; {TRACING_HINT}")
    if proc.returncode != 0:
        if "Invalid prediction mode" in text:
            raise IbcNotTraceable(f"{bitstream}: VTM's block-statistics tracing stops at "
                                  "an IBC CU; encode it again with --vtm-decoder (which "
                                  "turns IBC off)")
        last = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise CodecError(f"{bitstream}: VTM DecoderApp failed (exit {proc.returncode}): "
                         f"{last}")
    if not _has_block_stats(Path(trace)):
        raise CodecError(f"{decoder}: wrote no block statistics (built without tracing?); "
                         f"{TRACING_HINT}")
    return text


def _has_block_stats(trace: Path) -> bool:
    if not trace.is_file():
        return False
    with open(trace, encoding="utf-8", errors="replace") as f:
        return any(line.startswith("BlockStat") for line in f)


def vtm_version(output: str) -> str | None:
    """The version DecoderApp prints when it starts ("VTM Decoder Version 23.13 ...")."""
    m = _VERSION.search(output)
    return m.group(1) if m else None


def first_difference(a: str | os.PathLike, b: str | os.PathLike, fmt: YuvFormat) -> int | None:
    """The first picture index at which YUV files `a` and `b` differ (a missing picture in
    either counts), or None when they are equal."""
    ra, rb = YuvReader(a, fmt), YuvReader(b, fmt)
    for k in range(max(len(ra), len(rb))):
        if k >= len(ra) or k >= len(rb):
            return k
        if not all(np.array_equal(x, y) for x, y in zip(ra.planes(k), rb.planes(k),
                                                         strict=True)):
            return k
    return None


def check_bit_exact(vtm_rec: str | os.PathLike, ffmpeg_rec: str | os.PathLike,
                    fmt: YuvFormat, bitstream: str | os.PathLike) -> None:
    """CodecError naming the first picture where VTM's and FFmpeg's decodes differ."""
    k = first_difference(vtm_rec, ffmpeg_rec, fmt)
    if k is not None:
        raise CodecError(f"{bitstream}: VTM's picture {k} differs from FFmpeg's "
                         f"{ffmpeg_rec} (the decoders disagree: not bit-exact)")


def vtm_side_info(decoder: str | os.PathLike, bitstream: str | os.PathLike,
                  rec: str | os.PathLike, qp_dir: str | os.PathLike, width: int, height: int,
                  pocs: Sequence[int], ctu_size: int | None = None) -> dict[str, Any]:
    """Depth and QP planes of a VVC bitstream from VTM, checked against FFmpeg's `rec`.

    Runs DecoderApp with block-statistics tracing, checks its reconstruction against `rec`
    (10-bit 4:2:0, `width`×`height`, output order) bit for bit, writes `qp_dir/depth.raw`,
    `qp_dir/qp.raw` (uint8 [H, W] per output picture k, found in the trace by `pocs[k]`) and
    `qp_dir/vtm_blockstats.vtmbmsstats`, each atomically. `ctu_size` (from the SPS) is
    recorded beside the depth it is counted from. Returns the manifest fields
    (depth_map, depth_map_format, qp_map, qp_map_format) plus "settings", "versions" and
    "commands" to merge into the manifest's.
    """
    from codecnn.io.blockstats import filter_vtm_trace
    from codecnn.io.sideinfo import vtm_trace_planes

    qp_dir = Path(qp_dir)
    bitstream = Path(bitstream)
    stats, depth_path, qp_path = (qp_dir / BLOCKSTATS_NAME, qp_dir / DEPTH_NAME,
                                  qp_dir / QP_NAME)
    vtm_rec = temporary_sibling(qp_dir / "rec_vtm.yuv")
    full = temporary_sibling(qp_dir / "vtm_full.vtmbmsstats")
    try:
        output = run_vtm(decoder, bitstream, vtm_rec, full)
        fmt = YuvFormat(width, height, 10, "420")
        check_bit_exact(vtm_rec, rec, fmt, bitstream)
        kept = filter_vtm_trace(full, stats, KEPT_STATISTICS)
        dual = kept.get("Depth_Chroma", set())
        planes = vtm_trace_planes(stats, width, height, pocs, ("depth", "qp"))
    finally:
        vtm_rec.unlink(missing_ok=True)
        full.unlink(missing_ok=True)
    for path, what in ((depth_path, "depth"), (qp_path, "qp")):
        with atomic_output(path) as tmp:
            np.stack(planes[what]).tofile(tmp)
    hist = np.bincount(np.stack(planes["depth"]).ravel(), minlength=1)
    version = vtm_version(output) or "unknown"
    return {
        "depth_map": str(depth_path), "depth_map_format": dict(MAP_FORMAT),
        "qp_map": str(qp_path), "qp_map_format": dict(MAP_FORMAT),
        "settings": {
            "depth_source": DEPTH_SOURCE, "depth_statistic": "Depth",
            "depth_note": DEPTH_NOTE, "ctu_size": ctu_size,
            "dual_tree_pictures": sum(1 for p in pocs if p in dual),
            "qp_source": "VTM block statistics `QP` (cu.qp: the CU's luma QP)",
            "depth_histogram": hist.tolist(),
            "vtm_check": "VTM's reconstruction equals FFmpeg's bit for bit",
            "block_stats": {"file": BLOCKSTATS_NAME, "statistics": list(KEPT_STATISTICS),
                            "format": "VTM block statistics as DecoderApp traced them, only "
                                      "these statistics kept (YUView: open rec.yuv, then "
                                      "this file)"}},
        "versions": {"vtm": f"{version} ({Path(decoder)})"},
        "commands": {"vtm_decode": vtm_decode_command(decoder, bitstream, "rec_vtm.yuv",
                                                      "vtm_full.vtmbmsstats")},
    }


def add_vtm_depth(manifest: str | os.PathLike, decoder: str | os.PathLike):
    """Give an existing VVC coded sequence VTM's depth and QP planes (its bitstream decoded
    again, checked against its rec.yuv); rewrites its manifest atomically and returns the
    new CodedSequence. The sequence must have been coded without IBC (All Intra at VVenC's
    usual presets is; `--vtm-decoder` at encode time makes sure)."""
    from codecnn.codec.codecs import read_headers
    from codecnn.codec.ffmpeg import find_ffmpeg
    from codecnn.codec.manifest import load_manifest, save_manifest

    manifest = Path(manifest)
    seq = load_manifest(manifest)
    if seq.codec != "vvc":
        raise CodecError(f"{manifest}: VTM depth is for VVC, this sequence is {seq.codec}")
    sps, _ = read_headers(find_ffmpeg(None, None, None, "trace_headers").path, "vvc",
                          seq.bitstream)
    side = vtm_side_info(decoder, seq.bitstream, seq.reconstruction, manifest.parent,
                         seq.width, seq.height, [p.poc for p in seq.pictures], sps.ctb_size)
    seq = replace(seq, encoder_settings={**seq.encoder_settings, **side.pop("settings")},
                  versions={**seq.versions, **side.pop("versions")},
                  commands={**seq.commands, **side.pop("commands")}, **side)
    save_manifest(seq, manifest)
    return seq
