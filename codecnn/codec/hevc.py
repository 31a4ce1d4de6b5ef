"""HEVC (H.265) in the loop: x265 encode through FFmpeg, libde265 decode with depth/QP maps.

HEVC is the one codec whose CU partitions a decoder on any machine exports (libde265, see
`codecnn.codec.libde265`), so it is the real source of depth for depth-aware training and
the QP/depth analyses. The flow per (sequence, nominal QP):

1. `x265_encode_args`: FFmpeg's libx265 at a fixed QP with every source of QP variation off
   (`aq-mode=0`: no adaptive quantisation, so cu_qp_delta_enabled_flag is 0; `cutree=0`;
   `ipratio=1`/`pbratio=1`: no offsets between I, P and B pictures), All Intra (`keyint=1`)
   or Random Access (fixed GOP of `bframes=3` with `b-adapt=0`, `b-pyramid`, closed GOPs,
   an IRAP every `intra_period` pictures). Every CU of every picture then has the nominal QP.
2. `parse_hevc_trace` reads FFmpeg's `trace_headers` output: per picture in decode order its
   POC, slice type and SliceQpY = 26 + init_qp_minus26 + slice_qp_delta (the check that
   the settings above did what they claim), plus the SPS geometry.
3. `decode_hevc`: libde265 decodes the stream; per output picture it writes the 10-bit
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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.codec import libde265
from codecnn.codec.headers import poc_msb
from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError, malformed_input
from codecnn.io.atomic import temporary_sibling

CONFIGS = ("ai", "ra")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")
DEFAULT_INTRA_PERIOD = 32
MAX_QP = 51
VERSION_PATTERN = r"HEVC encoder version (\S+)"  # x265's log line when FFmpeg opens it
BITSTREAM_NAME = "bitstream.265"
DEPTH_NAME = "depth.raw"
QP_NAME = "qp.raw"
BLOCKSTATS_NAME = "depth_qp.vtmbmsstats"
MAP_FORMAT = {"kind": "raw", "granularity": 1}

_SLICE_TYPES = {0: "B", 1: "P", 2: "I"}


# --- command lines (pure) -----------------------------------------------------------------

def x265_params(config: str, intra_period: int | None = None) -> str:
    """The -x265-params string for a fixed-QP encode in which every CU has the nominal QP.

    ra: an IRAP every `intra_period` pictures (default DEFAULT_INTRA_PERIOD), hierarchical B
    in fixed groups of 4 (bframes=3, b-adapt=0), closed GOPs.
    """
    if config not in CONFIGS:
        raise CodecError(f"HEVC config must be one of {', '.join(CONFIGS)}, got {config!r}")
    common = ["aq-mode=0", "cutree=0", "ipratio=1", "pbratio=1", "scenecut=0", "info=0"]
    intra_period = DEFAULT_INTRA_PERIOD if intra_period is None else int(intra_period)
    if config == "ai":
        gop = ["keyint=1", "min-keyint=1"]
    else:
        gop = [f"keyint={intra_period}", f"min-keyint={intra_period}", "bframes=3",
               "b-adapt=0", "b-pyramid=1", "open-gop=0"]
    return ":".join(gop + common)


def x265_options(qp: int, config: str, preset: str = "medium",
                 intra_period: int | None = None) -> list[str]:
    """FFmpeg options after `-c:v libx265` for a fixed-QP encode (a pure function)."""
    if preset not in PRESETS:
        raise CodecError(f"x265 preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return ["-preset", preset, "-qp", str(int(qp)),
            "-x265-params", x265_params(config, intra_period)]


# --- header trace ------------------------------------------------------------------------

@dataclass(frozen=True)
class HevcSps:
    """The SPS geometry that decoding and the depth map need (luma samples)."""

    coded_width: int
    coded_height: int
    crop: tuple[int, int, int, int]  # conformance window left, right, top, bottom (luma)
    bit_depth: int
    ctb_size: int
    min_cb_size: int
    log2_max_poc_lsb: int

    @property
    def width(self) -> int:
        return self.coded_width - self.crop[0] - self.crop[1]

    @property
    def height(self) -> int:
        return self.coded_height - self.crop[2] - self.crop[3]


@dataclass(frozen=True)
class HevcPicture:
    """One coded picture in decode order (from its first slice segment header).

    poc: picture order count made monotone across coded video sequences (each IRAP that
    starts a new sequence continues after the largest POC so far), so sorting by it gives
    output order even when every picture is an IDR (All Intra).
    """

    decode_index: int
    nal_type: int
    poc: int
    slice_type: str
    slice_qp: int
    cu_qp_delta: bool


_LINE = re.compile(r"^\[trace_headers[^\]]*\]\s+\d+\s+(\S+)\s+[01]*\s*=\s*(-?\d+)\s*$")
_SECTION = re.compile(r"^\[trace_headers[^\]]*\]\s+([A-Za-z][A-Za-z ]+?)\s*$")


def _sections(text: str) -> list[tuple[str, dict[str, int]]]:
    """[(section title, {syntax element: value})] in stream order (first value of a name)."""
    out: list[tuple[str, dict[str, int]]] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            if out:
                out[-1][1].setdefault(m.group(1), int(m.group(2)))
            continue
        m = _SECTION.match(line)
        if m:
            out.append((m.group(1), {}))
    return out


@malformed_input("HEVC header trace", CodecError)
def parse_hevc_trace(text: str, name: str = "bitstream") -> tuple[HevcSps, list[HevcPicture]]:
    """SPS and per-picture header facts from FFmpeg `trace_headers` output for HEVC.

    SliceQpY = 26 + init_qp_minus26 (PPS) + slice_qp_delta (slice header). POC follows
    H.265 8.3.1 (PicOrderCntMsb from the previous TemporalId-0 reference picture).
    """
    sps_by_id: dict[int, dict[str, int]] = {}
    pps_by_id: dict[int, dict[str, int]] = {}
    pictures: list[HevcPicture] = []
    first_sps: HevcSps | None = None
    prev_tid0_poc = 0
    base = 0  # added to POCs of the current coded video sequence
    top = -1  # largest monotone POC so far
    for title, f in _sections(text):
        if title == "Sequence Parameter Set":
            sps_by_id[f.get("sps_seq_parameter_set_id", 0)] = f
        elif title == "Picture Parameter Set":
            pps_by_id[f.get("pps_pic_parameter_set_id", 0)] = f
        elif title == "Slice Segment Header":
            if not f.get("first_slice_segment_in_pic_flag", 0):
                continue
            pps = pps_by_id.get(f.get("slice_pic_parameter_set_id", 0))
            sps = sps_by_id.get(pps.get("pps_seq_parameter_set_id", 0)) if pps else None
            if pps is None or sps is None:
                raise CodecError(f"{name}: slice before its parameter sets in the header trace")
            geom = _sps_geometry(sps)
            first_sps = first_sps or geom
            nal = f["nal_unit_type"]
            tid = f.get("nuh_temporal_id_plus1", 1) - 1
            lsb = f.get("slice_pic_order_cnt_lsb", 0)
            max_lsb = 1 << geom.log2_max_poc_lsb
            irap = 16 <= nal <= 23
            if irap and (nal in (19, 20) or nal in (16, 17, 18) or not pictures):
                msb = 0  # IDR/BLA, or a CRA that starts the stream: a new coded video sequence
                base = top + 1
            else:
                prev_lsb = prev_tid0_poc % max_lsb
                msb = poc_msb(lsb, prev_lsb, prev_tid0_poc - prev_lsb, max_lsb)
            poc = msb + lsb
            sub_layer_non_ref = nal <= 14 and nal % 2 == 0
            if tid == 0 and not (6 <= nal <= 9) and not sub_layer_non_ref:
                prev_tid0_poc = poc
            slice_qp = 26 + pps.get("init_qp_minus26", 0) + f.get("slice_qp_delta", 0)
            pictures.append(HevcPicture(len(pictures), nal, base + poc,
                                        _SLICE_TYPES[f["slice_type"]], slice_qp,
                                        bool(pps.get("cu_qp_delta_enabled_flag", 0))))
            top = max(top, base + poc)
    if first_sps is None or not pictures:
        raise CodecError(f"{name}: no HEVC slice headers in the trace (not an HEVC stream?)")
    return first_sps, pictures


def _sps_geometry(f: dict[str, int]) -> HevcSps:
    chroma = f.get("chroma_format_idc", 1)
    sub_w, sub_h = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma]
    crop = (0, 0, 0, 0)
    if f.get("conformance_window_flag", 0):
        crop = (sub_w * f.get("conf_win_left_offset", 0), sub_w * f.get("conf_win_right_offset", 0),
                sub_h * f.get("conf_win_top_offset", 0), sub_h * f.get("conf_win_bottom_offset", 0))
    log2_min = f["log2_min_luma_coding_block_size_minus3"] + 3
    return HevcSps(
        coded_width=f["pic_width_in_luma_samples"], coded_height=f["pic_height_in_luma_samples"],
        crop=crop, bit_depth=f.get("bit_depth_luma_minus8", 0) + 8,
        ctb_size=1 << (log2_min + f["log2_diff_max_min_luma_coding_block_size"]),
        min_cb_size=1 << log2_min, log2_max_poc_lsb=f["log2_max_pic_order_cnt_lsb_minus4"] + 4)


def read_hevc_headers(ffmpeg: str, bitstream: str | os.PathLike) -> tuple[HevcSps,
                                                                          list[HevcPicture]]:
    """Run trace_headers on a .265 file and parse it (decode order)."""
    from codecnn.codec.codecs import CODECS, trace_command
    from codecnn.codec.ffmpeg import run

    proc = run(trace_command(ffmpeg, CODECS["hevc"], bitstream), f"{bitstream}: reading headers")
    return parse_hevc_trace(proc.stderr.decode("utf-8", "replace"), str(bitstream))


def picture_infos(trace_text: str, bitstream: bytes) -> list[PictureInfo]:
    """PictureInfo per picture in output order (monotone POC), bits from the access units."""
    _, pics = parse_hevc_trace(trace_text)
    bits = libde265.access_unit_bits(bitstream)
    if len(bits) != len(pics):
        raise CodecError(f"bitstream has {len(bits)} access units but its headers describe "
                         f"{len(pics)} pictures")
    return [PictureInfo(p.poc, p.slice_type, p.slice_qp, bits[p.decode_index])
            for p in sorted(pics, key=lambda p: p.poc)]


# --- decoding with maps --------------------------------------------------------------------

@dataclass
class DecodeResult:
    """What `decode_hevc` produced, per output picture (output order)."""

    pictures: list[HevcPicture]
    depth_histogram: list[int] = field(default_factory=list)  # samples per depth 0, 1, ...


def _atomic(path: Path) -> Path:
    return temporary_sibling(path)


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


def decode_hevc(bitstream: str | os.PathLike, sps: HevcSps, pictures: list[HevcPicture],
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
    from codecnn.io.blockstats import BlockStatsWriter, StatType
    from codecnn.io.yuv import YuvFormat, YuvReader, convert_bit_depth

    bitstream = Path(bitstream)
    if sps.crop[0] or sps.crop[2]:
        raise CodecError(f"{bitstream}: conformance window with a left/top offset is not "
                         "supported (the CTB grid would not start at the picture origin)")
    ref = YuvReader(reference_rec, YuvFormat(sps.width, sps.height, 10, "420")) \
        if reference_rec is not None else None
    order = sorted(range(len(pictures)), key=lambda k: pictures[k].poc)
    paths = {"rec": rec_path, "depth": depth_path, "qp": qp_path, "stats": stats_path}
    paths = {k: Path(v) for k, v in paths.items() if v is not None}
    tmps = {k: _atomic(p) for k, p in paths.items()}
    if sps.ctb_size > 64 or 64 % sps.ctb_size:
        raise CodecError(f"{bitstream}: CTB size {sps.ctb_size} is not one HEVC allows")
    depth_offset = np.uint8((64 // sps.ctb_size).bit_length() - 1)  # log2(64 / CTB)
    files = {k: open(t, "w", encoding="ascii") if k == "stats" else open(t, "wb")  # noqa: SIM115
             for k, t in tmps.items()}  # closed below
    hist = np.zeros(8, np.int64)
    try:
        stats = None
        if "stats" in files:
            stats = BlockStatsWriter(
                files["stats"], sps.width, sps.height,
                [StatType("Depth", "Integer", (0, 3)), StatType("QP", "Integer", (0, MAX_QP))],
                [f"codecnn decode_hevc (libde265 {libde265.libde265_version()}): one "
                 "rectangle per CU; Depth = log2(64 / CU size); QP = the CU's luma QpY; "
                 "POC = output picture index"])
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
    except BaseException:
        for k, fh in files.items():
            fh.close()
            tmps[k].unlink(missing_ok=True)
        raise
    for k, fh in files.items():
        fh.close()
        os.replace(tmps[k], paths[k])
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
    sps, pics = parse_hevc_trace(trace_text, str(bitstream))
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
                     "coded_width": sps.coded_width, "coded_height": sps.coded_height,
                     "conformance_window": list(sps.crop),
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
