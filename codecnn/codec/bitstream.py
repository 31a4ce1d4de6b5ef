"""What VVC and HEVC bitstreams share, read once for both codecs.

- `trace_sections`: FFmpeg's `-bsf:v trace_headers` text split into syntax structures.
- `SLICE_TYPES`, `poc_msb`, `conformance_window`: rules H.266 and H.265 state alike.
- `Sps` and `CodedPicture`: the sequence geometry and one picture as its headers describe it.
- `split_annexb` and `access_unit_sizes`: the Annex-B byte stream cut into NAL units and
  grouped into access units by a codec's own rule (`codecnn.codec.vvc`, `.hevc`). Every
  byte, start codes and zero bytes included, belongs to exactly one access unit, so the
  sizes sum to the file size.
- `picture_infos`: headers and access units joined into the manifest's `PictureInfo`s.

The codec modules hold only what differs: NAL unit types, syntax element names and the
POC rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from codecnn.codec.manifest import PictureInfo
from codecnn.errors import CodecError

SLICE_TYPES = {0: "B", 1: "P", 2: "I"}  # sh_slice_type / slice_type, same in both standards

_LINE_RE = re.compile(r"^\[trace_headers @ [^\]]*\]\s?(.*)$")
_FIELD_RE = re.compile(r"^\d+\s+(\S+)\s+[01]*\s*=\s*(-?\d+)\s*$")


def trace_sections(text: str) -> list[tuple[str, dict[str, int]]]:
    """Split trace_headers output into (title, {element: value}) per syntax structure.

    Any trace line that is not a syntax element opens a section (a NAL unit's name, or
    "Packet: ..."); repeated elements (list entries) keep their first value, as only
    scalars are read.
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


def conformance_window(sps: dict[str, int], prefix: str = "") -> tuple[int, int, int, int]:
    """The conformance window (left, right, top, bottom) in luma samples.

    `prefix` is what the standard puts before the element names: "sps_" in H.266
    (`sps_conf_win_left_offset`), "" in H.265 (`conf_win_left_offset`). Offsets count
    chroma samples: ×SubWidthC / ×SubHeightC (2 and 2 for 4:2:0, 2 and 1 for 4:2:2).
    """
    if not sps.get(f"{prefix}conformance_window_flag", 0):
        return (0, 0, 0, 0)
    chroma = sps.get(f"{prefix}chroma_format_idc", 1)
    sub_w = 2 if chroma in (1, 2) else 1
    sub_h = 2 if chroma == 1 else 1
    return (sub_w * sps.get(f"{prefix}conf_win_left_offset", 0),
            sub_w * sps.get(f"{prefix}conf_win_right_offset", 0),
            sub_h * sps.get(f"{prefix}conf_win_top_offset", 0),
            sub_h * sps.get(f"{prefix}conf_win_bottom_offset", 0))


@dataclass(frozen=True)
class Sps:
    """The sequence geometry that decoding and the maps need (luma samples)."""

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
class CodedPicture:
    """One picture as the headers describe it, in decoding order.

    cvs: index of its coded video sequence; output order is (cvs, poc). slice_qp: SliceQpY
    of its first slice. slice_type: the least intra of its slices (B > P > I).
    """

    decode_index: int
    cvs: int
    poc: int
    nal_unit_type: int
    temporal_id: int
    slice_type: str
    slice_qp: int
    pps_id: int
    num_slices: int = 1
    cu_qp_delta: bool = False  # the PPS lets CUs change the QP (HEVC only reads it so far)


def output_order(pictures: list[CodedPicture]) -> list[CodedPicture]:
    """Pictures in output order: by coded video sequence, then POC."""
    return sorted(pictures, key=lambda p: (p.cvs, p.poc))


@dataclass(frozen=True)
class Nal:
    """One NAL unit of an Annex-B stream.

    begin: where its start code begins, with the zero bytes before it (leading_zero_8bits,
    zero_byte, the previous unit's trailing_zero_8bits). data: the NAL unit, header first,
    without its trailing zero bytes.
    """

    begin: int
    data: bytes


def split_annexb(data: bytes) -> list[Nal]:
    """Cut an Annex-B byte stream at its 0x000001 start codes; units under 2 bytes (no
    whole NAL header) are dropped, their bytes go with the next unit."""
    nals: list[Nal] = []
    end = 0  # where the previous unit's data ends
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        nxt = data.find(b"\x00\x00\x01", pos + 3)
        unit = data[pos + 3 : nxt if nxt >= 0 else len(data)].rstrip(b"\x00")
        if len(unit) >= 2:
            nals.append(Nal(end, unit))
            end = pos + 3 + len(unit)
        pos = nxt
    return nals


def access_units(nals: list[Nal], is_vcl: Callable[[Nal], bool],
                 opens_au: Callable[[Nal], bool]) -> list[list[Nal]]:
    """Group NAL units into access units in decoding order.

    A unit for which `opens_au` holds starts a new access unit once the current one has a
    VCL unit (the codec's rule: H.266 7.4.2.4.3, H.265 7.4.2.4.4). Units after the last
    picture that would open an access unit without a picture stay with the last one.
    """
    aus: list[list[Nal]] = []
    current: list[Nal] = []
    seen_vcl = False
    for nal in nals:
        if seen_vcl and opens_au(nal):
            aus.append(current)
            current, seen_vcl = [], False
        current.append(nal)
        seen_vcl |= is_vcl(nal)
    if current and (seen_vcl or not aus):
        aus.append(current)
    elif current:
        aus[-1].extend(current)
    return aus if any(is_vcl(n) for au in aus for n in au) else []


def unit_sizes(aus: list[list[Nal]], total: int) -> list[int]:
    """Byte size of each access unit; the first also owns any bytes before the first start
    code, so the sizes sum to `total` (the stream's length)."""
    begins = [0] + [au[0].begin for au in aus[1:]] + [total]
    return [b - a for a, b in zip(begins[:-1], begins[1:], strict=True)] if aus else []


def picture_infos(pictures: list[CodedPicture], au_bytes: list[int]) -> list[PictureInfo]:
    """PictureInfo per picture in output order, bits from the access-unit sizes."""
    if len(au_bytes) != len(pictures):
        raise CodecError(f"bitstream has {len(au_bytes)} access units but its headers "
                         f"describe {len(pictures)} pictures")
    return [PictureInfo(poc=p.poc, slice_type=p.slice_type, slice_qp=p.slice_qp,
                        bits=8 * au_bytes[p.decode_index]) for p in output_order(pictures)]
