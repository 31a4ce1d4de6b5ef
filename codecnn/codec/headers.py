"""What the VVC bitstream itself says per picture: POC, slice type, SliceQpY and bits.

Two independent readings of the same `.266` file:

- `parse_trace`: the text FFmpeg's `-bsf:v trace_headers` prints (every syntax element of
  the parameter sets, picture and slice headers). From it, per picture in decoding order:
  POC (8.3.1 of the VVC spec, including the MSB wrap), slice type (sh_slice_type, inferred
  I when ph_inter_slice_allowed_flag is 0) and SliceQpY = 26 + pps_init_qp_minus26 +
  (ph_qp_delta if the PPS puts the QP delta in the picture header, else sh_qp_delta), with
  the PPS the picture refers to.
- `access_unit_sizes`: the Annex-B byte stream split into NAL units and grouped into access
  units (7.4.2.4.3: an AU starts at an AUD/parameter set/PH/prefix SEI after a VCL unit, or
  at a slice carrying its own picture header). Every byte, start codes included, belongs to
  exactly one AU, so the sizes sum to the file size.

`picture_infos` joins both and returns the pictures in output order (CVS, then POC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError, malformed_input

SLICE_TYPES = {0: "B", 1: "P", 2: "I"}

# NAL unit types (Table 5 of H.266).
_IDR_W_RADL, _IDR_N_LP, _CRA, _GDR = 7, 8, 9, 10
_RADL, _RASL = 2, 3
# Non-VCL types that, following a VCL unit, open a new access unit (7.4.2.4.3).
_AU_START = {12, 13, 14, 15, 16, 17, 19, 20, 23, 26, 28, 29}

_LINE_RE = re.compile(r"^\[trace_headers @ [^\]]*\]\s?(.*)$")
_FIELD_RE = re.compile(r"^\d+\s+(\S+)\s+[01]+\s+=\s+(-?\d+)\s*$")


@dataclass(frozen=True)
class DecodedPicture:
    """One picture as the headers describe it, in decoding order."""

    decode_index: int
    cvs: int  # index of the coded video sequence (a new one starts at IDR / first CRA)
    poc: int
    nal_unit_type: int
    temporal_id: int
    slice_type: str
    slice_qp: int
    pps_id: int
    num_slices: int = 1



def poc_msb(lsb: int, prev_lsb: int, prev_msb: int, max_lsb: int) -> int:
    """PicOrderCntMsb from the previous TemporalId-0 picture (H.266/H.265 clause 8.3.1).

    The same wrap-around rule in both standards: a jump of at least half the LSB range
    means the LSB counter wrapped.
    """
    if lsb < prev_lsb and prev_lsb - lsb >= max_lsb // 2:
        return prev_msb + max_lsb
    if lsb > prev_lsb and lsb - prev_lsb > max_lsb // 2:
        return prev_msb - max_lsb
    return prev_msb

def _sections(text: str) -> list[tuple[str, dict[str, int]]]:
    """Split trace_headers output into (title, {element: value}) per syntax structure.

    Repeated elements (e.g. list entries) keep their first value; only scalars are used.
    """
    sections: list[tuple[str, dict[str, int]]] = []
    current: dict[str, int] | None = None
    for raw in text.splitlines():
        m = _LINE_RE.match(raw.rstrip())
        if not m:
            continue
        body = m.group(1).strip()
        f = _FIELD_RE.match(body)
        if f:
            if current is not None:
                current.setdefault(f.group(1), int(f.group(2)))
            continue
        current = {}
        sections.append((body, current))
    return sections


@malformed_input("VVC header trace", CodecError)
def parse_trace(text: str) -> list[DecodedPicture]:
    """Pictures in decoding order from `trace_headers` output (see module docstring)."""
    sps: dict[int, dict[str, int]] = {}
    pps: dict[int, dict[str, int]] = {}
    ph: dict[str, int] | None = None
    pictures: list[DecodedPicture] = []
    prev_tid0 = (0, 0)  # (lsb, msb) of the previous TemporalId-0 non-leading picture
    cvs = -1
    first_after_eos = True
    new_picture_pending = False
    for title, f in _sections(text):
        if title.startswith("Sequence Parameter Set"):
            sps[f["sps_seq_parameter_set_id"]] = f
        elif title.startswith("Picture Parameter Set"):
            pps[f["pps_pic_parameter_set_id"]] = f
        elif title.startswith("Picture Header"):
            ph = f
            new_picture_pending = True
        elif title.startswith("End of Sequence"):
            first_after_eos = True
        elif title.startswith("Slice Header"):
            own_ph = f.get("sh_picture_header_in_slice_header_flag", 0) == 1
            if own_ph:
                ph = f
                new_picture_pending = True
            if ph is None:
                raise CodecError("slice without a picture header in trace_headers output")
            pps_id = ph["ph_pic_parameter_set_id"]
            if pps_id not in pps:
                raise CodecError(f"slice refers to PPS {pps_id}, which the stream never sent")
            p = pps[pps_id]
            s = sps.get(p["pps_seq_parameter_set_id"])
            if s is None:
                raise CodecError(f"PPS {pps_id} refers to a missing SPS")
            if p.get("pps_qp_delta_info_in_ph_flag", 0):
                delta = ph.get("ph_qp_delta", 0)
            else:
                delta = f.get("sh_qp_delta", 0)
            qp = 26 + p["pps_init_qp_minus26"] + delta
            stype = SLICE_TYPES[f.get("sh_slice_type", 2)]
            if not new_picture_pending:
                # another slice of the same picture: keep the first slice's QP; the type is
                # the least intra one (B > P > I), so a mixed picture counts as inter
                last = pictures[-1]
                pictures[-1] = DecodedPicture(
                    last.decode_index, last.cvs, last.poc, last.nal_unit_type,
                    last.temporal_id, max(last.slice_type, stype, key="IPB".index),
                    last.slice_qp, last.pps_id, last.num_slices + 1)
                continue
            new_picture_pending = False
            nut = f["nal_unit_type"]
            tid = f["nuh_temporal_id_plus1"] - 1
            max_lsb = 1 << (s["sps_log2_max_pic_order_cnt_lsb_minus4"] + 4)
            lsb = ph["ph_pic_order_cnt_lsb"]
            irap_reset = nut in (_IDR_W_RADL, _IDR_N_LP) or (
                nut in (_CRA, _GDR) and first_after_eos)
            if irap_reset:
                cvs += 1
                msb = 0
                if ph.get("ph_poc_msb_cycle_present_flag", 0):
                    msb = ph.get("ph_poc_msb_cycle_val", 0) * max_lsb
            else:
                msb = poc_msb(lsb, *prev_tid0, max_lsb)
            first_after_eos = False
            if tid == 0 and nut not in (_RADL, _RASL):
                prev_tid0 = (lsb, msb)
            pictures.append(DecodedPicture(len(pictures), max(cvs, 0), msb + lsb, nut, tid,
                                           stype, qp, pps_id))
    return pictures


def _nal_starts(data: bytes) -> list[tuple[int, int]]:
    """(start of the start code incl. leading zeros, start of the NAL header) per NAL unit."""
    out = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i
        while begin > 0 and data[begin - 1] == 0 and (not out or begin - 1 > out[-1][1]):
            begin -= 1
        out.append((begin, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return out


@malformed_input("VVC bitstream", CodecError)
def access_unit_sizes(data: bytes) -> list[int]:
    """Byte size of each access unit of an Annex-B VVC stream, in decoding order.

    The first AU also owns any bytes before the first start code; the sizes sum to len(data).
    """
    nals = _nal_starts(data)
    if not nals:
        raise CodecError("no Annex-B start code in the bitstream")
    au_starts: list[int] = []
    seen_vcl = False
    for begin, hdr in nals:
        if hdr + 2 > len(data):
            break
        nut = data[hdr + 1] >> 3
        is_vcl = nut <= 11
        # a new AU: the first NAL; after a VCL unit, a non-VCL unit that opens one, or a
        # slice with sh_picture_header_in_slice_header_flag (first payload bit) set
        starts = not au_starts or (seen_vcl and (
            nut in _AU_START
            or (is_vcl and hdr + 2 < len(data) and bool(data[hdr + 2] & 0x80))))
        if starts:
            au_starts.append(0 if not au_starts else begin)
            seen_vcl = False
        if is_vcl:
            seen_vcl = True
    bounds = au_starts + [len(data)]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def output_order(pictures: list[DecodedPicture]) -> list[DecodedPicture]:
    """Pictures in output order: by coded video sequence, then POC."""
    return sorted(pictures, key=lambda p: (p.cvs, p.poc))


def picture_infos(trace_text: str, bitstream: bytes) -> list[PictureInfo]:
    """PictureInfo per picture in output order, with bits from the access-unit sizes."""
    pics = parse_trace(trace_text)
    sizes = access_unit_sizes(bitstream)
    if len(sizes) != len(pics):
        raise CodecError(
            f"bitstream has {len(sizes)} access units but its headers describe {len(pics)} "
            "pictures")
    return [PictureInfo(poc=p.poc, slice_type=p.slice_type, slice_qp=p.slice_qp,
                        bits=8 * sizes[p.decode_index]) for p in output_order(pics)]


@malformed_input("VVC header trace", CodecError)
def coded_size(trace_text: str) -> tuple[int, int, tuple[int, int, int, int]]:
    """(coded width, coded height, conformance window (left, right, top, bottom) in luma
    samples) from the first SPS; shows how a size VVC cannot code directly was padded."""
    for title, f in _sections(trace_text):
        if title.startswith("Sequence Parameter Set"):
            sub_w = 2 if f.get("sps_chroma_format_idc", 1) in (1, 2) else 1
            sub_h = 2 if f.get("sps_chroma_format_idc", 1) == 1 else 1
            win = (0, 0, 0, 0)
            if f.get("sps_conformance_window_flag", 0):
                win = (sub_w * f["sps_conf_win_left_offset"],
                       sub_w * f["sps_conf_win_right_offset"],
                       sub_h * f["sps_conf_win_top_offset"],
                       sub_h * f["sps_conf_win_bottom_offset"])
            return (f["sps_pic_width_max_in_luma_samples"],
                    f["sps_pic_height_max_in_luma_samples"], win)
    raise CodecError("no sequence parameter set in trace_headers output")
