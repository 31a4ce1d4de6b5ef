"""What an HEVC bitstream itself says per picture: POC, slice type, SliceQpY and bits.

The same two readings as `codecnn.codec.vvc`, with H.265's rules (shared machinery in
`codecnn.codec.bitstream`):

- `parse_trace`: FFmpeg's `trace_headers` output; per picture in decoding order its POC,
  slice type and SliceQpY = 26 + init_qp_minus26 + slice_qp_delta (the check that the
  fixed-QP settings of `codecnn.codec.commands.x265_params` did what they claim), plus the
  SPS geometry that `codecnn.codec.hevc_maps` needs for the depth map.
- `access_unit_sizes`: the Annex-B stream grouped into access units (H.265 7.4.2.4.4).

POC is made monotone across coded video sequences: x265's All Intra codes every picture
as an IDR with POC 0, so each IRAP that starts a new sequence continues after the largest
POC so far and sorting by it gives output order.
"""

from __future__ import annotations

from codecnn.codec import bitstream
from codecnn.codec.bitstream import SLICE_TYPES, CodedPicture, Nal, Sps, poc_msb
from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError, malformed_input

MAX_QP = 51
# After a picture's slices, VPS/SPS/PPS/AUD/prefix SEI (32..35, 39), reserved 41..44 and
# unspecified 48..55 open the next access unit; EOS/EOB/filler/suffix SEI (36..38, 40) still
# belong to the current one.
_OPENS_AU = {32, 33, 34, 35, 39, *range(41, 45), *range(48, 56)}


def nal_type(nal: Nal) -> int:
    """nal_unit_type: bits 1..6 of the first header byte."""
    return (nal.data[0] >> 1) & 0x3F


def _is_vcl(nal: Nal) -> bool:
    return nal_type(nal) < 32


def _opens_au(nal: Nal) -> bool:
    # first_slice_segment_in_pic_flag is the first bit after the 2-byte NAL header
    if _is_vcl(nal):
        return len(nal.data) > 2 and bool(nal.data[2] & 0x80)
    return nal_type(nal) in _OPENS_AU


def sps_geometry(f: dict[str, int]) -> Sps:
    """The geometry of one SPS's syntax elements."""
    log2_min = f["log2_min_luma_coding_block_size_minus3"] + 3
    return Sps(
        coded_width=f["pic_width_in_luma_samples"], coded_height=f["pic_height_in_luma_samples"],
        crop=bitstream.conformance_window(f), bit_depth=f.get("bit_depth_luma_minus8", 0) + 8,
        ctb_size=1 << (log2_min + f["log2_diff_max_min_luma_coding_block_size"]),
        min_cb_size=1 << log2_min, log2_max_poc_lsb=f["log2_max_pic_order_cnt_lsb_minus4"] + 4)


class _PocState:
    """H.265 8.3.1 (PicOrderCntMsb from the previous TemporalId-0 reference picture), made
    monotone across coded video sequences."""

    def __init__(self) -> None:
        self.prev_tid0 = 0
        self.base = 0  # added to POCs of the current coded video sequence
        self.top = -1  # largest monotone POC so far
        self.cvs = -1

    def next(self, nal: int, tid: int, lsb: int, max_lsb: int, first: bool) -> int:
        if 16 <= nal <= 23 and (nal <= 20 or first):
            msb = 0  # IDR/BLA, or a CRA that starts the stream: a new coded video sequence
            self.base = self.top + 1
            self.cvs += 1
        else:
            prev_lsb = self.prev_tid0 % max_lsb
            msb = poc_msb(lsb, prev_lsb, self.prev_tid0 - prev_lsb, max_lsb)
        sub_layer_non_ref = nal <= 14 and nal % 2 == 0
        if tid == 0 and not (6 <= nal <= 9) and not sub_layer_non_ref:
            self.prev_tid0 = msb + lsb
        self.top = max(self.top, self.base + msb + lsb)
        return self.base + msb + lsb


@malformed_input("HEVC header trace", CodecError)
def parse_trace(text: str, name: str = "bitstream") -> tuple[Sps, list[CodedPicture]]:
    """The first SPS and the pictures in decoding order (from each picture's first slice
    segment header), from `trace_headers` output. CodecError when the trace has no picture."""
    sps_by_id: dict[int, dict[str, int]] = {}
    pps_by_id: dict[int, dict[str, int]] = {}
    pictures: list[CodedPicture] = []
    first_sps: Sps | None = None
    poc = _PocState()
    for title, f in bitstream.trace_sections(text):
        if title == "Sequence Parameter Set":
            sps_by_id[f.get("sps_seq_parameter_set_id", 0)] = f
        elif title == "Picture Parameter Set":
            pps_by_id[f.get("pps_pic_parameter_set_id", 0)] = f
        elif title == "Slice Segment Header":
            if not f.get("first_slice_segment_in_pic_flag", 0):
                continue
            pps_id = f.get("slice_pic_parameter_set_id", 0)
            pps = pps_by_id.get(pps_id)
            sps = sps_by_id.get(pps.get("pps_seq_parameter_set_id", 0)) if pps else None
            if pps is None or sps is None:
                raise CodecError(f"{name}: slice before its parameter sets in the header trace")
            geom = sps_geometry(sps)
            first_sps = first_sps or geom
            nal, tid = f["nal_unit_type"], f.get("nuh_temporal_id_plus1", 1) - 1
            pic_poc = poc.next(nal, tid, f.get("slice_pic_order_cnt_lsb", 0),
                               1 << geom.log2_max_poc_lsb, not pictures)
            slice_qp = 26 + pps.get("init_qp_minus26", 0) + f.get("slice_qp_delta", 0)
            pictures.append(CodedPicture(
                len(pictures), max(poc.cvs, 0), pic_poc, nal, tid, SLICE_TYPES[f["slice_type"]],
                slice_qp, pps_id, cu_qp_delta=bool(pps.get("cu_qp_delta_enabled_flag", 0))))
    if first_sps is None or not pictures:
        raise CodecError(f"{name}: no HEVC slice headers in the trace (not an HEVC stream?)")
    return first_sps, pictures


def access_units(data: bytes) -> list[list[Nal]]:
    """The NAL units of an Annex-B HEVC stream grouped into access units, decoding order."""
    return bitstream.access_units(bitstream.split_annexb(data), _is_vcl, _opens_au)


@malformed_input("HEVC bitstream", CodecError)
def access_unit_sizes(data: bytes) -> list[int]:
    """Byte size of each access unit in decoding order, start codes included; the first
    also owns any bytes before the first start code, so the sizes sum to len(data)."""
    return bitstream.unit_sizes(access_units(data), len(data))


def picture_infos(trace_text: str, data: bytes) -> list[PictureInfo]:
    """PictureInfo per picture in output order (monotone POC), bits from the access units."""
    _, pictures = parse_trace(trace_text)
    return bitstream.picture_infos(pictures, access_unit_sizes(data))


@malformed_input("HEVC header trace", CodecError)
def coded_size(trace_text: str) -> tuple[int, int, tuple[int, int, int, int]]:
    """(coded width, coded height, conformance window (left, right, top, bottom) in luma
    samples) from the first SPS."""
    for title, f in bitstream.trace_sections(trace_text):
        if title == "Sequence Parameter Set":
            return (f["pic_width_in_luma_samples"], f["pic_height_in_luma_samples"],
                    bitstream.conformance_window(f))
    raise CodecError("no sequence parameter set in trace_headers output")
