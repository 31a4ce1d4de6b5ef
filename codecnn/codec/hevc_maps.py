"""HEVC CU depth and QP maps: libde265 decodes the stream again and draws its partitions.

HEVC is the one codec whose CU partitions a decoder on any machine exports (libde265, see
`codecnn.codec.libde265`), so it is the real source of depth for depth-aware training and
the QP/depth analyses. The flow per (sequence, nominal QP), after `codecnn.codec.encode`
coded it with x265 at a fixed QP (`codecnn.codec.commands.x265_params`) and FFmpeg decoded it:

1. `codecnn.codec.hevc.parse_trace` reads the header trace: per picture in decode order
   its POC, slice type and SliceQpY, plus the SPS geometry.
2. `decode_hevc`: libde265 decodes the stream; per output picture it writes the 10-bit
   reconstruction, the CU depth plane and the QP plane (the raw-plane format: one uint8
   plane per picture at luma resolution, granularity 1), and the same depth and QP per CU
   as VTM-style block statistics (`depth_qp.vtmbmsstats`, statistics `Depth` and `QP`,
   one rectangle per CU) that YUView overlays on rec.yuv and `VtmTraceMap` reads.

Depth is the quadtree depth of the CU counted from 64×64: 0 (64×64) .. 3 (8×8), i.e.
log2(64 / CU size), whatever the stream's CTB size. x265's ultrafast and superfast presets
code 32×32 CTBs: an unsplit CTB there is a 32×32 CU, depth 1, as in a 64×64-CTB stream, so
depth means one CU size across presets. x265 evaluates no 64×64 intra CUs (even a flat grey
picture is coded as 32×32s), so intra pictures have depths 1..3 and depth 0 occurs in P/B
pictures only.

How HEVC CTBs meet the 132×132 network patches (decided here, done by `extract`): the
default stays 128×128 windows on a 128-aligned grid, i.e. each window covers exactly 2×2
HEVC CTBs (128 = 2·64, both grids start at 0, so no CTB is ever cut) plus the usual 2-sample
border, and the depth plane keeps the per-CTB depth 0..3. The network, shards and datasets
are then the same as for VVC, and depth means what HEVC people call CU depth. For per-CTB
studies `extract --ctu-size 64` cuts one window per CTB (68×68 patches); it is an option,
not the default, because the models and presets are tuned for 132×132 inputs.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from codecnn.codec import libde265
from codecnn.codec.bitstream import CodedPicture, Sps
from codecnn.codec.hevc import MAX_QP, parse_trace
from codecnn.errors import CodecError
from codecnn.io.atomic import atomic_output
from codecnn.io.blockstats import BlockStatsWriter, StatType
from codecnn.io.yuv import YuvFormat, YuvReader, convert_bit_depth

DEPTH_NAME = "depth.raw"
QP_NAME = "qp.raw"
BLOCKSTATS_NAME = "depth_qp.vtmbmsstats"
MAP_FORMAT = {"kind": "raw", "granularity": 1}


@dataclass
class DecodeResult:
    """What `decode_hevc` produced, per output picture (output order)."""

    pictures: list[CodedPicture]
    depth_histogram: list[int] = field(default_factory=list)  # samples per depth 0, 1, ...


def cu_blocks(depth: np.ndarray) -> np.ndarray:
    """The CUs of a depth plane as `decode_hevc` writes it (uint8 [H, W], log2(64 / CU
    size)): int [N, 4] of (x, y, w, h), raster order of the top-left corners, cut at the
    picture's right and bottom edges.

    A CU of depth d is the (64 >> d)-aligned square around its samples, so its top-left
    corner is the one sample of the (64 >> d)-grid inside it, and that sample has depth d.
    CodecError if the rectangles painted with their depth do not give the plane back (not
    a quadtree of aligned CUs).
    """
    h, w = depth.shape
    if int(depth.max()) > 6:
        raise CodecError(f"depth {int(depth.max())} is below a 1x1 CU (64 >> depth)")
    parts = []
    painted = np.full((h, w), -1, np.int16)
    for d in range(int(depth.max()) + 1):
        s = 64 >> d
        top_left = depth[::s, ::s] == d
        ys, xs = np.nonzero(top_left)
        x, y = xs * s, ys * s
        parts.append(np.stack([x, y, np.minimum(s, w - x), np.minimum(s, h - y)], 1))
        inside = np.repeat(np.repeat(top_left, s, axis=0), s, axis=1)[:h, :w]
        painted[inside & (painted < 0)] = d
    if not np.array_equal(painted, depth):  # a gap, an overlap or a CU of mixed depth
        raise CodecError(f"the {w}x{h} depth plane is not a quadtree of aligned CUs")
    blocks = np.concatenate(parts)
    return blocks[np.lexsort((blocks[:, 0], blocks[:, 1]))]


def _check_geometry(bitstream: Path, sps: Sps) -> np.uint8:
    """The depth offset log2(64 / CTB size); CodecError for geometry the maps cannot hold."""
    if sps.crop[0] or sps.crop[2]:
        raise CodecError(f"{bitstream}: conformance window with a left/top offset is not "
                         "supported (the CTB grid would not start at the picture origin)")
    if sps.ctb_size > 64 or 64 % sps.ctb_size:
        raise CodecError(f"{bitstream}: CTB size {sps.ctb_size} is not one HEVC allows")
    return np.uint8((64 // sps.ctb_size).bit_length() - 1)


def _stats_writer(fh: IO[str], sps: Sps) -> BlockStatsWriter:
    return BlockStatsWriter(
        fh, sps.width, sps.height,
        [StatType("Depth", "Integer", (0, 3)), StatType("QP", "Integer", (0, MAX_QP))],
        [f"codecnn decode_hevc (libde265 {libde265.libde265_version()}): one rectangle per "
         "CU; Depth = log2(64 / CU size); QP = the CU's luma QpY; POC = output picture index"])


def _open_outputs(stack: ExitStack, paths: dict[str, Path]) -> dict[str, IO]:
    """Each output opened under its temporary name; the stack renames them on success."""
    files: dict[str, IO] = {}
    for kind, path in paths.items():
        tmp = stack.enter_context(atomic_output(path))
        text = kind == "stats"
        files[kind] = stack.enter_context(
            tmp.open("w", encoding="ascii") if text else tmp.open("wb"))
    return files


def decode_hevc(bitstream: str | os.PathLike, sps: Sps, pictures: list[CodedPicture],
                rec_path: str | os.PathLike | None = None,
                depth_path: str | os.PathLike | None = None,
                qp_path: str | os.PathLike | None = None,
                reference_rec: str | os.PathLike | None = None,
                stats_path: str | os.PathLike | None = None) -> DecodeResult:
    """Decode with libde265; write reconstruction, depth and QP planes in output order.

    rec: 10-bit little-endian 4:2:0 YUV (8-bit streams are shifted up, as the reference
    software does). depth: uint8 [H, W] per picture, log2(64 / CU size): 0 (64×64) .. 3
    (8×8), for any CTB size (a 32×32-CTB stream starts at 1). qp: uint8 [H, W] per
    picture, the CU's luma QpY
    (exact inside 20..40 from draw_QuantPY, the slice QP outside; see libde265.qp_from_grey).
    reference_rec: a 10-bit YUV file (FFmpeg's own decode) that libde265's reconstruction
    must equal bit for bit, else CodecError: the maps then describe exactly those pictures.
    stats: the same depth and QP as block statistics for YUView (`Depth`, `QP`; one
    rectangle per CU, POC = output picture index; see codecnn.io.blockstats).
    Every file is written under a temporary name and renamed when complete.
    """
    bitstream = Path(bitstream)
    depth_offset = _check_geometry(bitstream, sps)
    ref = YuvReader(reference_rec, YuvFormat(sps.width, sps.height, 10, "420")) \
        if reference_rec is not None else None
    order = sorted(range(len(pictures)), key=lambda k: pictures[k].poc)
    paths = {"rec": rec_path, "depth": depth_path, "qp": qp_path, "stats": stats_path}
    hist = np.zeros(8, np.int64)
    with ExitStack() as stack:
        files = _open_outputs(stack, {k: Path(v) for k, v in paths.items() if v is not None})
        stats = _stats_writer(files["stats"], sps) if "stats" in files else None
        n = 0
        for pic in libde265.iter_decode(bitstream, window=sps.crop):
            if n >= len(order) or pic.decode_index != order[n]:
                raise CodecError(f"{bitstream}: libde265 output picture {n} is access unit "
                                 f"{pic.decode_index}, the headers' POC order says "
                                 f"{order[n] if n < len(order) else 'none'}")
            planes = pic.planes
            if pic.bit_depth != 10:
                planes = tuple(convert_bit_depth(p, pic.bit_depth, 10) for p in planes)
            if ref is not None and (n >= len(ref) or not all(
                    np.array_equal(a, b) for a, b in zip(planes, ref.planes(n), strict=True))):
                raise CodecError(f"{bitstream}: libde265's picture {n} differs from "
                                 f"{reference_rec}")
            if "rec" in files:
                files["rec"].write(b"".join(
                    np.ascontiguousarray(p, dtype="<u2").tobytes() for p in planes))
            if "depth" in files or stats is not None:
                depth = libde265.depth_from_cb_grid(pic.cb_grid, sps.ctb_size, sps.min_cb_size,
                                                    (sps.coded_width, sps.coded_height))
                depth += depth_offset  # counted from 64×64, whatever the CTB size
                hist += np.bincount(depth.ravel(), minlength=8)[:8]
                if "depth" in files:
                    files["depth"].write(depth.tobytes())
            if "qp" in files or stats is not None:
                qp = libde265.qp_from_grey(pic.qp_grey, pictures[pic.decode_index].slice_qp)
                if "qp" in files:
                    files["qp"].write(qp.tobytes())
            if stats is not None:
                blocks = cu_blocks(depth)
                x, y = blocks[:, 0], blocks[:, 1]  # a CU has one depth and one QP
                stats.picture(n, blocks, {"Depth": depth[y, x], "QP": qp[y, x]})
            n += 1
        if n != len(pictures):
            raise CodecError(f"{bitstream}: libde265 output {n} of {len(pictures)} pictures")
    top = int(np.flatnonzero(hist).max()) + 1 if hist.any() else 0
    return DecodeResult([pictures[k] for k in order], hist[:top].tolist())


def libde265_side_info(bitstream: Path, trace_text: str, rec: Path, qp_dir: Path,
                       qp: int) -> dict[str, Any]:
    """The `encode` hook for HEVC: depth and QP planes from libde265, checked and described.

    Called after FFmpeg's own decode wrote `rec`; libde265 decodes `bitstream` again, must
    give the same pictures bit for bit, and writes `qp_dir/depth.raw` and `qp_dir/qp.raw`
    (raw planes, granularity 1) and the same per CU as `qp_dir/depth_qp.vtmbmsstats` (for
    YUView; a `vtm-trace` map too). CodecError when a slice QP is not the nominal `qp` (the
    fixed-QP settings did not hold) or the decoders disagree. Returns the manifest fields.
    """
    sps, pics = parse_trace(trace_text, str(bitstream))
    off = [p for p in pics if p.slice_qp != qp]
    if off:
        raise CodecError(f"{bitstream}: picture {off[0].decode_index} has slice QP "
                         f"{off[0].slice_qp}, not the nominal {qp}")
    depth, qp_map = qp_dir / DEPTH_NAME, qp_dir / QP_NAME
    result = decode_hevc(bitstream, sps, pics, None, depth, qp_map, reference_rec=rec,
                         stats_path=qp_dir / BLOCKSTATS_NAME)
    return {
        "depth_map": str(depth), "depth_map_format": dict(MAP_FORMAT),
        "qp_map": str(qp_map), "qp_map_format": dict(MAP_FORMAT),
        "settings": {"ctb_size": sps.ctb_size, "min_cb_size": sps.min_cb_size,
                     "cu_qp_delta_enabled": any(p.cu_qp_delta for p in pics),
                     "depth_histogram": result.depth_histogram,
                     "depth_source": "libde265 draw_CB_grid: log2(64 / CU size), any CTB size",
                     "qp_source": "libde265 draw_QuantPY (exact in 20..40), slice QP outside",
                     "block_stats": {"file": BLOCKSTATS_NAME, "statistics": ["Depth", "QP"],
                                     "format": "VTM block statistics, one rectangle per CU "
                                               "(YUView: open rec.yuv, then this file)"}},
        "versions": {"libde265": f"{libde265.libde265_version()} "
                                 f"({libde265.find_libde265()._name})"},
    }
