"""What a VVC bitstream itself says per picture: POC, slice type, SliceQpY and bits.

Two independent readings of the same `.266` file (the shared machinery is in
`codecnn.codec.bitstream`; `codecnn.codec.hevc` is the same for H.265):

- `parse_trace`: the text FFmpeg's `-bsf:v trace_headers` prints (every syntax element of
  the parameter sets, picture and slice headers). From it, per picture in decoding order:
  POC (8.3.1 of the VVC spec, including the MSB wrap), slice type (sh_slice_type, inferred
  I when ph_inter_slice_allowed_flag is 0) and SliceQpY = 26 + pps_init_qp_minus26 +
  (ph_qp_delta if the PPS puts the QP delta in the picture header, else sh_qp_delta), with
  the PPS the picture refers to.
- `access_unit_sizes`: the Annex-B byte stream split into NAL units and grouped into access
  units (7.4.2.4.3: an AU starts at an AUD/parameter set/PH/prefix SEI after a VCL unit, or
  at a slice carrying its own picture header).

`picture_infos` joins both and returns the pictures in output order (CVS, then POC).
"""

from __future__ import annotations

from codecnn.codec import bitstream
from codecnn.codec.bitstream import SLICE_TYPES, CodedPicture, Nal, Sps, poc_msb
from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError, malformed_input

# NAL unit types (Table 5 of H.266).
_IDR_W_RADL, _IDR_N_LP, _CRA, _GDR = 7, 8, 9, 10
_RADL, _RASL = 2, 3
_LAST_VCL = 11
# Non-VCL types that, following a VCL unit, open a new access unit (7.4.2.4.3).
_AU_START = {12, 13, 14, 15, 16, 17, 19, 20, 23, 26, 28, 29}


def nal_type(nal: Nal) -> int:
    """nal_unit_type: the top 5 bits of the second header byte."""
    return nal.data[1] >> 3


def _is_vcl(nal: Nal) -> bool:
    return nal_type(nal) <= _LAST_VCL


def _opens_au(nal: Nal) -> bool:
    # a non-VCL unit that opens one, or a slice with sh_picture_header_in_slice_header_flag
    # (the first payload bit) set
    t = nal_type(nal)
    if t in _AU_START:
        return True
    return t <= _LAST_VCL and len(nal.data) > 2 and bool(nal.data[2] & 0x80)


def sps_geometry(f: dict[str, int]) -> Sps:
    """The geometry of one SPS's syntax elements."""
    log2_min = f.get("sps_log2_min_luma_coding_block_size_minus2", 0) + 2
    return Sps(coded_width=f["sps_pic_width_max_in_luma_samples"],
               coded_height=f["sps_pic_height_max_in_luma_samples"],
               crop=bitstream.conformance_window(f, "sps_"),
               bit_depth=f.get("sps_bitdepth_minus8", 0) + 8,
               ctb_size=1 << (f.get("sps_log2_ctu_size_minus5", 2) + 5),
               min_cb_size=1 << log2_min,
               log2_max_poc_lsb=f["sps_log2_max_pic_order_cnt_lsb_minus4"] + 4)


class _PocState:
    """POC derivation across pictures (8.3.1): the previous TemporalId-0 picture and where
    a coded video sequence starts."""

    def __init__(self) -> None:
        self.prev_tid0 = (0, 0)  # (lsb, msb) of the previous TemporalId-0 non-leading picture
        self.cvs = -1
        self.first_after_eos = True

    def next(self, nut: int, tid: int, ph: dict[str, int], max_lsb: int) -> int:
        lsb = ph["ph_pic_order_cnt_lsb"]
        if nut in (_IDR_W_RADL, _IDR_N_LP) or (nut in (_CRA, _GDR) and self.first_after_eos):
            self.cvs += 1
            msb = 0
            if ph.get("ph_poc_msb_cycle_present_flag", 0):
                msb = ph.get("ph_poc_msb_cycle_val", 0) * max_lsb
        else:
            msb = poc_msb(lsb, *self.prev_tid0, max_lsb)
        self.first_after_eos = False
        if tid == 0 and nut not in (_RADL, _RASL):
            self.prev_tid0 = (lsb, msb)
        return msb + lsb


def _more_slices(last: CodedPicture, stype: str) -> CodedPicture:
    # another slice of the same picture: keep the first slice's QP; the type is the least
    # intra one (B > P > I), so a mixed picture counts as inter
    return CodedPicture(last.decode_index, last.cvs, last.poc, last.nal_unit_type,
                        last.temporal_id, max(last.slice_type, stype, key="IPB".index),
                        last.slice_qp, last.pps_id, last.num_slices + 1, last.cu_qp_delta)


@malformed_input("VVC header trace", CodecError)
def parse_trace(text: str, name: str = "bitstream") -> tuple[Sps, list[CodedPicture]]:
    """The first SPS and the pictures in decoding order, from `trace_headers` output (see
    the module docstring). CodecError when the trace has no picture."""
    sps: dict[int, dict[str, int]] = {}
    pps: dict[int, dict[str, int]] = {}
    ph: dict[str, int] | None = None
    pictures: list[CodedPicture] = []
    poc = _PocState()
    new_picture_pending = False
    first_sps: Sps | None = None
    for title, f in bitstream.trace_sections(text):
        if title.startswith("Sequence Parameter Set"):
            sps[f["sps_seq_parameter_set_id"]] = f
        elif title.startswith("Picture Parameter Set"):
            pps[f["pps_pic_parameter_set_id"]] = f
        elif title.startswith("Picture Header"):
            ph, new_picture_pending = f, True
        elif title.startswith("End of Sequence"):
            poc.first_after_eos = True
        elif title.startswith("Slice Header"):
            if f.get("sh_picture_header_in_slice_header_flag", 0) == 1:
                ph, new_picture_pending = f, True
            if ph is None:
                raise CodecError(f"{name}: slice without a picture header in trace_headers "
                                 "output")
            pps_id = ph["ph_pic_parameter_set_id"]
            if pps_id not in pps:
                raise CodecError(f"{name}: slice refers to PPS {pps_id}, which the stream "
                                 "never sent")
            p = pps[pps_id]
            s = sps.get(p["pps_seq_parameter_set_id"])
            if s is None:
                raise CodecError(f"{name}: PPS {pps_id} refers to a missing SPS")
            first_sps = first_sps or sps_geometry(s)
            in_ph = p.get("pps_qp_delta_info_in_ph_flag", 0)
            qp = 26 + p["pps_init_qp_minus26"] + (ph.get("ph_qp_delta", 0) if in_ph
                                                  else f.get("sh_qp_delta", 0))
            stype = SLICE_TYPES[f.get("sh_slice_type", 2)]
            if not new_picture_pending:
                pictures[-1] = _more_slices(pictures[-1], stype)
                continue
            new_picture_pending = False
            nut, tid = f["nal_unit_type"], f["nuh_temporal_id_plus1"] - 1
            max_lsb = 1 << (s["sps_log2_max_pic_order_cnt_lsb_minus4"] + 4)
            pic_poc = poc.next(nut, tid, ph, max_lsb)
            pictures.append(CodedPicture(
                len(pictures), max(poc.cvs, 0), pic_poc, nut, tid, stype, qp, pps_id,
                cu_qp_delta=bool(p.get("pps_cu_qp_delta_enabled_flag", 0))))
    if first_sps is None:
        raise CodecError(f"{name}: no VVC slice headers in the trace (not a VVC stream?)")
    return first_sps, pictures


@malformed_input("VVC bitstream", CodecError)
def access_unit_sizes(data: bytes) -> list[int]:
    """Byte size of each access unit of an Annex-B VVC stream, in decoding order.

    The first AU also owns any bytes before the first start code; the sizes sum to len(data).
    """
    nals = bitstream.split_annexb(data)
    if not nals:
        raise CodecError("no Annex-B start code in the bitstream")
    return bitstream.unit_sizes(bitstream.access_units(nals, _is_vcl, _opens_au), len(data))


def picture_infos(trace_text: str, data: bytes) -> list[PictureInfo]:
    """PictureInfo per picture in output order, with bits from the access-unit sizes."""
    _, pictures = parse_trace(trace_text)
    return bitstream.picture_infos(pictures, access_unit_sizes(data))


@malformed_input("VVC header trace", CodecError)
def coded_size(trace_text: str) -> tuple[int, int, tuple[int, int, int, int]]:
    """(coded width, coded height, conformance window (left, right, top, bottom) in luma
    samples) from the first SPS; shows how a size VVC cannot code directly was padded."""
    for title, f in bitstream.trace_sections(trace_text):
        if title.startswith("Sequence Parameter Set"):
            return (f["sps_pic_width_max_in_luma_samples"],
                    f["sps_pic_height_max_in_luma_samples"],
                    bitstream.conformance_window(f, "sps_"))
    raise CodecError("no sequence parameter set in trace_headers output")
