"""Header parsing on hand-made traces: the cases VVenC's default streams never exercise
(picture header NAL units, QP delta in the PH, several PPSs, POC LSB wrap-around)."""

from __future__ import annotations

import pytest

from codecnn.codec import hevc
from codecnn.codec.bitstream import output_order
from codecnn.codec.vvc import access_unit_sizes, parse_trace, picture_infos
from codecnn.errors import CodecError


def section(title: str, **fields: int) -> list[str]:
    lines = [f"[trace_headers @ 0x55aa] {title}"]
    for name, value in fields.items():
        lines.append(f"[trace_headers @ 0x55aa] 0           {name:<50} 1 = {value}")
    return lines


def sps(log2_lsb_minus4: int = 0) -> list[str]:
    return section("Sequence Parameter Set", nal_unit_type=15, sps_seq_parameter_set_id=0,
                   sps_log2_max_pic_order_cnt_lsb_minus4=log2_lsb_minus4,
                   sps_pic_width_max_in_luma_samples=64, sps_pic_height_max_in_luma_samples=64)


def pps(pid: int, init_qp_minus26: int, in_ph: int) -> list[str]:
    return section("Picture Parameter Set", nal_unit_type=16, pps_pic_parameter_set_id=pid,
                   pps_seq_parameter_set_id=0, pps_init_qp_minus26=init_qp_minus26,
                   pps_cu_qp_delta_enabled_flag=0, pps_qp_delta_info_in_ph_flag=in_ph)


def slice_own_ph(nut: int, lsb: int, pps_id: int = 0, qp_delta: int = 0, stype: int | None = None,
                 tid: int = 0) -> list[str]:
    f = dict(nal_unit_type=nut, nuh_temporal_id_plus1=tid + 1,
             sh_picture_header_in_slice_header_flag=1,
             ph_inter_slice_allowed_flag=int(stype is not None), ph_pic_parameter_set_id=pps_id,
             ph_pic_order_cnt_lsb=lsb)
    if stype is not None:
        f["sh_slice_type"] = stype
    f["sh_qp_delta"] = qp_delta
    return section("Slice Header", **f)


def test_qp_delta_in_picture_header_nal_and_several_pps():
    lines = sps() + pps(0, 0, 0) + pps(1, 5, 1)
    # picture 0: PPS 0, QP delta in the slice header → 26 + 0 + 6
    lines += slice_own_ph(8, 0, pps_id=0, qp_delta=6)
    # picture 1: separate PH NAL using PPS 1 (delta in the PH) → 26 + 5 - 3; two slices
    lines += section("Picture Header", nal_unit_type=19, ph_inter_slice_allowed_flag=1,
                     ph_intra_slice_allowed_flag=1, ph_pic_parameter_set_id=1,
                     ph_pic_order_cnt_lsb=1, ph_qp_delta=-3)
    for stype in (2, 1):
        lines += section("Slice Header", nal_unit_type=0, nuh_temporal_id_plus1=1,
                         sh_picture_header_in_slice_header_flag=0, sh_slice_type=stype)
    _, pics = parse_trace("\n".join(lines))
    assert [(p.poc, p.slice_qp, p.pps_id, p.num_slices) for p in pics] == [
        (0, 32, 0, 1), (1, 28, 1, 2)]
    assert pics[1].slice_type == "P"  # the picture's least-intra slice type
    assert pics[0].slice_type == "I"  # sh_slice_type absent: inferred I


def test_poc_msb_wraps_and_output_order_follows_poc():
    # MaxPicOrderCntLsb = 16: POCs 0, 8, 4, 16 (lsb 0), 12, 24 (lsb 8), 20 (lsb 4)
    order = [(9, 0, None, 0), (0, 8, 0, 0), (0, 4, 0, 1), (0, 0, 0, 0), (0, 12, 0, 1),
             (0, 8, 0, 0), (0, 4, 0, 1)]
    lines = sps(0) + pps(0, 0, 0)
    for nut, lsb, stype, tid in order:
        lines += slice_own_ph(nut, lsb, stype=stype, tid=tid, qp_delta=tid)
    _, pics = parse_trace("\n".join(lines))
    assert [p.poc for p in pics] == [0, 8, 4, 16, 12, 24, 20]
    assert [p.poc for p in output_order(pics)] == [0, 4, 8, 12, 16, 20, 24]


def test_idr_starts_a_new_coded_video_sequence():
    lines = sps() + pps(0, 0, 0)
    for nut, lsb in ((8, 0), (0, 1), (8, 0), (0, 1)):
        lines += slice_own_ph(nut, lsb, stype=None if nut == 8 else 1)
    _, pics = parse_trace("\n".join(lines))
    assert [(p.cvs, p.poc) for p in output_order(pics)] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_slice_referring_to_missing_pps_is_an_error():
    with pytest.raises(CodecError, match="PPS 3"):
        parse_trace("\n".join(sps() + pps(0, 0, 0) + slice_own_ph(8, 0, pps_id=3)))


def nal(nut: int, payload: bytes = b"\x80\x11", zero_byte: bool = True) -> bytes:
    start = b"\x00\x00\x00\x01" if zero_byte else b"\x00\x00\x01"
    return start + bytes([0, (nut << 3) | 1]) + payload


def test_access_units_from_annex_b():
    au1 = nal(20) + nal(15) + nal(16) + nal(8, b"\x80\xaa\xbb")  # AUD SPS PPS IDR
    au2 = nal(19, zero_byte=False) + nal(0, b"\x00\x12") + nal(0, b"\x00\x13")  # PH + 2 slices
    au3 = nal(1, b"\x80\x44") + nal(24)  # slice with its own PH, suffix SEI
    au4 = nal(23) + nal(0, b"\x80\x55") + nal(21)  # prefix SEI, slice, EOS
    data = b"\x00" + au1 + au2 + au3 + au4
    assert access_unit_sizes(data) == [len(au1) + 1, len(au2), len(au3), len(au4)]
    with pytest.raises(CodecError, match="start code"):
        access_unit_sizes(b"\x12\x34")


def test_picture_count_mismatch_is_an_error():
    lines = sps() + pps(0, 0, 0) + slice_own_ph(8, 0)
    with pytest.raises(CodecError, match="2 access units but its headers describe 1"):
        picture_infos("\n".join(lines), nal(8) + nal(8))


def hevc_nal(nut: int, payload: bytes = b"\x80\x11") -> bytes:
    return b"\x00\x00\x00\x01" + bytes([nut << 1, 1]) + payload


@pytest.mark.parametrize("codec", ["vvc", "hevc"])
def test_both_codecs_split_access_units_by_one_rule(codec):
    """Bytes before the first start code go to the first access unit, zero bytes before a
    start code to the unit after them, and units after the last picture that would open an
    access unit of their own (here an AUD) to the last one: every byte counted once."""
    if codec == "vvc":
        first, second, aud, sizes = nal(8), nal(1, b"\x80\x44"), nal(20), access_unit_sizes
    else:
        first, second, aud = hevc_nal(19), hevc_nal(1, b"\x80\x44"), hevc_nal(35, b"\x50")
        sizes = hevc.access_unit_sizes
    data = b"\x12" + first + b"\x00\x00" + second + aud
    assert sizes(data) == [1 + len(first), 2 + len(second) + len(aud)]
    assert sizes(first + aud) == [len(first + aud)]
