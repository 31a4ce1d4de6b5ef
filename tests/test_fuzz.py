"""Property-based fuzzing of every reader of outside data: whatever the bytes or text, a
reader either returns or raises one of codecnn's own errors (a one-line message at the CLI),
never an IndexError, KeyError or ZeroDivisionError from deep inside.

Seeds are real: a VVC and an HEVC stream coded here, their `trace_headers` text, a real
manifest and VTM-style block statistics; hypothesis mutates them (lines dropped, repeated,
swapped, numbers replaced by extreme values, bytes flipped, truncated) and also feeds pure
noise. 2,000 examples per reader.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codecnn.codec import hevc, vvc
from codecnn.codec.manifest import load_manifest
from codecnn.errors import CodecnnError
from codecnn.io.sideinfo import DumpPlaneMap, RawPlaneMap, VtmTraceMap
from codecnn.io.yuv import YuvFormat, YuvReader, parse_yuv_name

# CODECNN_FUZZ_EXAMPLES=20000 for a longer hunt; CI runs the default.
EXAMPLES = settings(max_examples=int(os.environ.get("CODECNN_FUZZ_EXAMPLES", "2000")),
                    deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
SCRATCH = Path(tempfile.mkdtemp(prefix="codecnn_fuzz_"))
EXTREMES = st.sampled_from([0, 1, -1, 2, 7, 8, 63, 64, 255, 1023, 65535, 2**31, -2**31, 10**12])


@functools.cache
def _seeds() -> dict:
    """Real bitstreams, header traces and a manifest to mutate (made once per session;
    not a fixture, so a failing example does not print 200 kB of seed)."""
    from codecnn.codec.codecs import CODECS
    from codecnn.codec.commands import trace_command
    from codecnn.codec.encode import encode_sequence
    from codecnn.codec.ffmpeg import find_ffmpeg, run

    root = SCRATCH / "coded"
    out = {}
    for codec in ("vvc", "hevc"):
        seq = encode_sequence("carphone_pristine", [37], "ra", 3, root / codec, codec=codec,
                              preset="faster" if codec == "vvc" else "ultrafast",
                              crop=(64, 64), progress=False)[0]
        bs = Path(seq.bitstream)
        ff = find_ffmpeg(None, None, None, "trace_headers")
        text = run(trace_command(ff.path, CODECS[codec], bs), "trace").stderr.decode()
        out[codec] = (bs.read_bytes(), text)
        out[f"{codec}_manifest"] = Path(seq.reconstruction).parent / "manifest.json"
    return out


@st.composite
def _mutated_lines(draw, lines: list[str]) -> str:
    """The seed's lines with a few edits: dropped, repeated, swapped, a number replaced by
    an extreme value, cut short, replaced by noise; then maybe truncated."""
    out = list(lines)
    for _ in range(draw(st.integers(0, 6))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["drop", "dup", "swap", "number", "cut", "noise"]))
        if kind == "drop":
            del out[i]
        elif kind == "dup":
            out.insert(i, out[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(out) - 1))
            out[i], out[j] = out[j], out[i]
        elif kind == "number":
            value = draw(EXTREMES)
            out[i] = re.sub(r"-?\d+(?!.*\d)", str(value), out[i], count=1)
        elif kind == "cut":
            out[i] = out[i][: draw(st.integers(0, len(out[i])))]
        else:
            out[i] = draw(st.text(max_size=40))
    if draw(st.booleans()) and out:
        out = out[: draw(st.integers(0, len(out)))]
    return "\n".join(out)


def _mutated_bytes(seed: bytes):
    @st.composite
    def build(draw):
        data = bytearray(seed)
        for _ in range(draw(st.integers(0, 8))):
            if not data:
                break
            i = draw(st.integers(0, len(data) - 1))
            kind = draw(st.sampled_from(["flip", "cut", "startcode", "zero"]))
            if kind == "flip":
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif kind == "cut":
                del data[i:]
            elif kind == "startcode":
                data[i:i] = b"\x00\x00\x01"
            else:
                data[i] = 0
        return bytes(data)

    return st.one_of(build(), st.binary(max_size=200))


def _ours(fn, *args):
    with contextlib.suppress(CodecnnError):  # our own errors are the allowed outcome
        fn(*args)


@pytest.mark.parametrize("name", ["vvc", "hevc"])
@EXAMPLES
@given(data=st.data())
def test_header_trace_parser(name, data):
    codec = {"vvc": vvc, "hevc": hevc}[name]  # the same functions in both modules
    text = data.draw(_mutated_lines(_seeds()[name][1].splitlines()))
    _ours(codec.parse_trace, text)
    _ours(codec.coded_size, text)


@EXAMPLES
@given(data=st.data())
def test_access_unit_parsers(data):
    seeds = _seeds()
    h266 = data.draw(_mutated_bytes(seeds["vvc"][0]))
    _ours(vvc.access_unit_sizes, h266)
    _ours(vvc.picture_infos, seeds["vvc"][1], h266)
    h265 = data.draw(_mutated_bytes(seeds["hevc"][0]))
    _ours(hevc.access_unit_sizes, h265)
    _ours(hevc.picture_infos, seeds["hevc"][1], h265)


@EXAMPLES
@given(size=st.integers(0, 3000), width=st.integers(1, 40), height=st.integers(1, 40),
       bits=st.sampled_from([8, 10]), chroma=st.sampled_from(["420", "400", "444"]),
       fill=st.integers(0, 255))
def test_yuv_reader(size, width, height, bits, chroma, fill):
    path = SCRATCH / "f.yuv"
    path.write_bytes(bytes([fill]) * size)
    try:
        reader = YuvReader(path, YuvFormat(width, height, bits, chroma))
    except CodecnnError:
        return
    for k in (0, len(reader) - 1):
        assert [p.shape for p in reader.planes(k)] == list(reader.format.plane_shapes)


@EXAMPLES
@given(name=st.text(max_size=40))
def test_yuv_name_parser(name):
    try:
        parsed = parse_yuv_name(name.replace("/", "_").replace("\x00", "") + ".yuv")
    except CodecnnError:
        return
    assert parsed.width is None or parsed.width > 0


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                     | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                          c, max_size=4),
                     max_leaves=12)


@EXAMPLES
@given(data=st.data())
def test_manifest_reader(data):
    seeds = _seeds()
    good = json.loads(seeds["vvc_manifest"].read_text())
    keys = sorted(good)
    doc = dict(good)
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = data.draw(_JSON)
    text = json.dumps(doc)
    if data.draw(st.booleans()):
        text = text[: data.draw(st.integers(0, len(text)))]
    path = seeds["vvc_manifest"].parent / "fuzz.json"
    path.write_text(text)
    _ours(load_manifest, path)


_STAT = "BlockStat: POC {poc} @({x},{y}) [{w}x{h}] {name}={v}"


@EXAMPLES
@given(data=st.data())
def test_vtm_trace_reader(data):
    lines = [_STAT.format(poc=0, x=x, y=y, w=16, h=16, name=name, v=v)
             for x in range(0, 32, 16) for y in range(0, 32, 16)
             for name, v in (("QP", 32), ("Depth", 2))]
    text = data.draw(_mutated_lines(lines))
    path = SCRATCH / "trace.txt"
    path.write_text(text)
    for what in ("qp", "depth"):
        _ours(VtmTraceMap, path, what, 32, 32, [0])


@EXAMPLES
@given(size=st.integers(0, 5000), fill=st.integers(0, 255), width=st.integers(1, 40),
       height=st.integers(1, 40), frames=st.integers(1, 3), granularity=st.sampled_from([1, 4]),
       bits=st.sampled_from([8, 10]))
def test_raw_and_dump_map_readers(size, fill, width, height, frames, granularity, bits):
    path = SCRATCH / "map.bin"
    path.write_bytes(bytes([fill]) * size)
    try:
        m = RawPlaneMap(path, "depth", width, height, frames, granularity)
        assert m.frame(frames - 1).shape == (height, width)
    except CodecnnError:
        pass
    try:
        d = DumpPlaneMap(path, "qp", width, height, frames, bits)
        assert d.frame(0).shape == (height, width) and np.all(d.frame(0) <= 63)
    except CodecnnError:
        pass
