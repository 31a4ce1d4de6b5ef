"""VVC CU depth and QP from VTM's DecoderApp with tracing (`codecnn.codec.vtm`).

tests/assets/vtm/ holds two real bitstreams coded by `codecnn encode` (VVenC, 128×72 cut
from carphone, QP 32: All Intra with 64×64 CTUs, 2 pictures; Random Access with 128×128 CTUs,
I B B) and the full block-statistics traces a tracing VTM DecoderApp wrote for them, gzipped
(tests/assets/vtm/README.md has the commands). Those run everywhere; where
$CODECNN_VTM_DECODER names a tracing DecoderApp, the whole path runs end to end too.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from codecnn.codec.vtm import (
    BLOCKSTATS_NAME,
    ENV,
    check_bit_exact,
    find_vtm_decoder,
    run_vtm,
    vtm_decode_command,
    vtm_side_info,
)
from codecnn.errors import CodecError, DataError
from codecnn.io.blockstats import filter_vtm_trace
from codecnn.io.sideinfo import (
    VtmTraceMap,
    open_map,
    parse_blockstat_line,
    parse_map_format,
    parse_vtm_trace,
    vtm_trace_planes,
)
from codecnn.io.yuv import YuvFormat

ASSETS = Path(__file__).parent / "assets" / "vtm"
W, H = 128, 72
# name: (POCs in output order, CTU size, slice QPs, dual-tree pictures)
STREAMS = {"ai": ([0, 1], 64, [32, 32], [0, 1]), "ra": ([0, 1, 2], 128, [32, 41, 40], [0])}
DECODER = os.environ.get(ENV)
needs_vtm = pytest.mark.skipif(
    not DECODER, reason=f"no VTM decoder configured: set ${ENV} to a DecoderApp built with "
    "tracing (tools/build_vtm.sh VTM_SOURCE_DIR) to run the whole VTM path")


# --- an independent reading of the trace, written for this test --------------------------

@pytest.fixture(scope="module", params=sorted(STREAMS))
def stream(request, tmp_path_factory):
    """(name, bitstream, trace): an asset bitstream and its VTM trace, unpacked."""
    name = request.param
    trace = tmp_path_factory.mktemp("trace") / f"carphone_{name}_qp32.vtmbmsstats"
    with gzip.open(ASSETS / f"{trace.name}.gz") as f:
        trace.write_bytes(f.read())
    return name, ASSETS / f"carphone_{name}_qp32.266", trace


def independent_planes(path: Path, name: str) -> dict[int, np.ndarray]:
    """{poc: int plane [H, W]} of statistic `name`, by plain string splitting of VTM's
    text lines `BlockStat: POC p @(x,y) [wxh] name=v` (later rectangles on top)."""
    coded_w, coded_h = -(-W // 8) * 8, -(-H // 8) * 8
    planes: dict[int, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("BlockStat: POC ") or "@(" not in line or "{" in line:
            continue
        left, value = line.rsplit("=", 1)
        left, stat_name = left.rsplit(" ", 1)
        if stat_name != name:
            continue
        poc = int(left.split()[2])
        x, y = (int(t) for t in left[left.index("(") + 1 : left.index(")")].split(","))
        w, h = (int(t) for t in left[left.index("[") + 1 : left.index("]")].split("x"))
        plane = planes.setdefault(poc, np.full((coded_h, coded_w), -1, np.int64))
        plane[y : y + h, x : x + w] = int(value)
    return {poc: p[:H, :W] for poc, p in planes.items()}


def test_real_trace_parsed_into_planes_equal_to_an_independent_reading(stream):
    name, _, trace = stream
    pocs, _, slice_qps, _ = STREAMS[name]
    planes = vtm_trace_planes(trace, W, H, pocs)
    for what, stat_name in (("depth", "Depth"), ("qp", "QP")):
        ref = independent_planes(trace, stat_name)
        assert sorted(ref) == pocs
        for k, poc in enumerate(pocs):
            assert (ref[poc] >= 0).all()
            np.testing.assert_array_equal(planes[what][k], ref[poc])
    for plane, qp in zip(planes["qp"], slice_qps, strict=True):
        assert (plane == qp).all()  # fixed QP: every CU of a picture at its slice QP
    assert len(np.unique(np.stack(planes["depth"]))) > 2  # a real partitioning
    for k in range(len(pocs)):  # the map `extract` opens reads the same
        np.testing.assert_array_equal(VtmTraceMap(trace, "depth", W, H, pocs).frame(k),
                                      planes["depth"][k])


def test_real_trace_depth_counts_from_the_ctu(stream):
    """VTM's Depth counts splits from the CTU, whichever its size (64 at VVenC faster, 128 at
    medium): a CU reached by quadtree splits only is (CTU >> Depth) square, in dual-tree I
    pictures (the implicit 64×64 split of a 128×128 CTU counted) and single-tree B pictures
    alike; the chroma tree of dual-tree pictures has its own `_Chroma` statistics."""
    name, _, trace = stream
    pocs, ctu, _, dual = STREAMS[name]
    stats = parse_vtm_trace(trace, ["Depth", "MT_Depth", "Depth_Chroma"])
    for poc in pocs:
        assert bool(stats[poc].get("Depth_Chroma")) == (poc in dual)
        mt = {(x, y, w, h): v for x, y, w, h, v in stats[poc]["MT_Depth"]}
        qt_only = [(w, h, d) for x, y, w, h, d in stats[poc]["Depth"] if mt[(x, y, w, h)] == 0
                   and x + w <= W and y + h <= H]
        assert qt_only
        assert all(w == h == ctu >> d for w, h, d in qt_only), qt_only


def test_real_trace_vectors_are_read_and_left_out(stream):
    """Every line of a real trace is one of VTM's shapes, motion vectors `{%4d,%4d}` of the
    B pictures included; a vector statistic asked for as a map is refused."""
    name, _, trace = stream
    if name == "ra":
        assert re.search(r"^BlockStat: POC [12] .* MVL0=\{\s*-?\d+,\s*-?\d+\}$",
                         trace.read_text(), re.M)
        with pytest.raises(DataError, match="MVL0 is not a scalar on a rectangle"):
            parse_vtm_trace(trace, ["MVL0"])
    lines = [ln for ln in trace.read_text().splitlines() if ln.startswith("BlockStat")]
    assert all(parse_blockstat_line(ln) is not None for ln in lines)


def test_every_blockstat_shape_vtm_prints():
    text = [
        ("BlockStat: POC 0 @(   0,   0) [64x64] Depth=0", (0, (0, 0, 64, 64), "Depth", (0,))),
        ("BlockStat: POC 3 @(  16,   8) [ 8x 8] MVL0={  -4,  12}",
         (3, (16, 8, 8, 8), "MVL0", (-4, 12))),
        ("BlockStat: POC 3 @(  16,   8) [ 8x 8] GeoPartitioning={   0,   1,   8,   7}",
         (3, (16, 8, 8, 8), "GeoPartitioning", (0, 1, 8, 7))),
        ("BlockStat: POC 3 @(  16,   8) [16x16] AffineMVL0={  -4,  12,   1,   2,   3,   4}",
         (3, (16, 8, 16, 16), "AffineMVL0", (-4, 12, 1, 2, 3, 4))),
        ("BlockStat: POC 2 @[(0, 0)--(16, 0)--(0, 16)--] GeoMVL0={   3,  -1}",
         (2, None, "GeoMVL0", (3, -1))),
        ("BlockStat: POC 2 @[(0, 0)--(16, 0)--(16, 16)--(0, 16)--] GeoIdx=3",
         (2, None, "GeoIdx", (3,))),
        ("BlockStat: POC 0 @(  32,   0) [32x32] Depth_Chroma=1",
         (0, (32, 0, 32, 32), "Depth_Chroma", (1,))),
        ("BlockStat;0;   0;   0;64;64;Depth;0", (0, (0, 0, 64, 64), "Depth", (0,))),
        ("BlockStat;0;   0;   0;64;64;MVL0;  -4;  12", (0, (0, 0, 64, 64), "MVL0", (-4, 12))),
        ("BlockStat;0;   0;   0;64;64;GeoPartitioning;   0;   1;   8;   7;",
         (0, (0, 0, 64, 64), "GeoPartitioning", (0, 1, 8, 7))),
        ("BlockStat;5;0;0;16;0;0;16;GeoIdx;3", (5, None, "GeoIdx", (3,))),
        ("BlockStat;5;0;0;16;0;0;16;GeoMVL0;3;-2", (5, None, "GeoMVL0", (3, -2))),
    ]
    for line, want in text:
        assert parse_blockstat_line(line) == want, line
    for bad in ("BlockStat: POC 0 @(0,0) [16xZZ] QP=2?7", "BlockStat;0;0;0;64;Depth;1",
                "BlockStat: POC 0 @(0,0) [8x8] MV={1,2,3}", "BlockStat: POC 0 @[(0, 0)--] X=1",
                "BlockStat;0;0;0;8;8;QP;x", "BlockStat;0;0;0;8;8;QP;1;2;3"):
        assert parse_blockstat_line(bad) is None, bad


@pytest.fixture(scope="module")
def ai(tmp_path_factory):
    """The All Intra asset: (bitstream, trace, POCs)."""
    trace = tmp_path_factory.mktemp("ai") / "carphone_ai_qp32.vtmbmsstats"
    with gzip.open(ASSETS / f"{trace.name}.gz") as f:
        trace.write_bytes(f.read())
    return ASSETS / "carphone_ai_qp32.266", trace, STREAMS["ai"][0]


def test_unreadable_blockstat_line_refused_with_its_number(tmp_path, ai):
    _, trace, _ = ai
    lines = trace.read_text().splitlines()
    at = next(i for i, s in enumerate(lines) if s.startswith("BlockStat")) + 3
    lines.insert(at, "BlockStat: POC 0 @(0,0) [8x8] SkipFlag=one")  # not a statistic we read
    bad = tmp_path / "bad.vtmbmsstats"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"bad.vtmbmsstats:{at + 1}: malformed BlockStat"):
        parse_vtm_trace(bad, ["Depth"])
    with pytest.raises(DataError, match=rf"bad.vtmbmsstats:{at + 1}: malformed BlockStat"):
        filter_vtm_trace(bad, tmp_path / "kept.vtmbmsstats", ["Depth"])


def test_vtmbmsstats_is_a_vtm_trace(tmp_path, ai):
    _, trace, pocs = ai
    assert parse_map_format(None, "x.vtmbmsstats") == {"kind": "vtm-trace"}
    odd = tmp_path / "depth.stats"  # any name: a file that begins like a trace is one
    odd.write_text(trace.read_text())
    assert parse_map_format(None, odd) == {"kind": "vtm-trace"}
    depth = open_map(odd, None, "depth", W, H, pocs)
    np.testing.assert_array_equal(depth.frame(1), vtm_trace_planes(trace, W, H, pocs)
                                  ["depth"][1])


def test_filtered_trace_keeps_header_and_wanted_statistics(tmp_path, ai):
    _, trace, pocs = ai
    kept = tmp_path / "kept.vtmbmsstats"
    seen = filter_vtm_trace(trace, kept, ["Depth", "QP", "Depth_Chroma"])
    assert set(seen) == {"Depth", "QP", "Depth_Chroma"} and seen["Depth"] == set(pocs)
    text = kept.read_text()
    assert text.startswith("# VTMBMS Block Statistics\n# Sequence size: [128x 72]")
    types = re.findall(r"^# Block Statistic Type: ([^;]+);", text, re.M)
    assert types == ["Depth", "QP", "Depth_Chroma"]
    assert kept.stat().st_size < trace.stat().st_size / 3
    for what in ("depth", "qp"):
        for a, b in zip(vtm_trace_planes(kept, W, H, pocs)[what],
                        vtm_trace_planes(trace, W, H, pocs)[what], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def ffmpeg_rec(tmp_path_factory, ai):
    """FFmpeg's decode of the All Intra asset (10-bit 4:2:0), as `encode` makes it."""
    bitstream, _, pocs = ai
    from codecnn.codec.codecs import get_codec
    from codecnn.codec.commands import decode_command
    from codecnn.codec.ffmpeg import find_ffmpeg, run

    out = tmp_path_factory.mktemp("rec") / "rec.yuv"
    ff = find_ffmpeg(None, None, "vvc", None)
    run(decode_command(ff.path, get_codec("vvc"), bitstream, out), "decoding the asset")
    assert out.stat().st_size == len(pocs) * W * H * 3
    return out


def _corrupt(src: Path, dst: Path, picture: int) -> Path:
    data = bytearray(src.read_bytes())
    data[picture * W * H * 3 + 2 * (5 * W + 7)] ^= 1  # one luma sample of `picture`
    dst.write_bytes(bytes(data))
    return dst


def test_bit_exact_check_fails_on_a_corrupted_reconstruction(ffmpeg_rec, tmp_path, ai):
    bitstream = ai[0]
    fmt = YuvFormat(W, H, 10, "420")
    check_bit_exact(ffmpeg_rec, ffmpeg_rec, fmt, bitstream)
    bad = _corrupt(ffmpeg_rec, tmp_path / "bad.yuv", 1)
    with pytest.raises(CodecError, match=r"VTM's picture 1 differs from FFmpeg's .*bad.yuv"):
        check_bit_exact(ffmpeg_rec, bad, fmt, bitstream)
    short = tmp_path / "short.yuv"
    short.write_bytes(ffmpeg_rec.read_bytes()[: W * H * 3])
    with pytest.raises(CodecError, match="picture 1 differs"):
        check_bit_exact(ffmpeg_rec, short, fmt, bitstream)


def _fake_decoder(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_decoder_without_tracing_is_one_line_naming_the_cmake_flag(tmp_path, ai):
    """A DecoderApp built without ENABLE_TRACING knows no --TraceFile: it prints VTM's
    "Unknown option" line and exits 1. Building a second VTM just for that takes minutes, so
    a two-line script stands in for it here (the only stand-in in this file)."""
    bitstream = ai[0]
    fake = _fake_decoder(tmp_path / "DecoderApp", "echo \"Unknown option \\`TraceFile' "
                         "(value:\\`x')\" >&2\nexit 1\n")
    with pytest.raises(CodecError, match="built without tracing.*-DENABLE_TRACING=ON"):
        run_vtm(fake, bitstream, tmp_path / "r.yuv", tmp_path / "t.vtmbmsstats")
    silent = _fake_decoder(tmp_path / "Silent", "exit 0\n")  # runs, writes no statistics
    with pytest.raises(CodecError, match="wrote no block statistics.*-DENABLE_TRACING=ON"):
        run_vtm(silent, bitstream, tmp_path / "r.yuv", tmp_path / "t.vtmbmsstats")
    # through the CLI: one line, nothing left behind but what encode made before VTM ran
    proc = run_cli("encode", "carphone_pristine", "--qp", "37", "--frames", "1", "--crop",
                   f"{W}x{H}", "-o", tmp_path / "out", "--vtm-decoder", fake)
    assert_one_line_error(proc, "-DENABLE_TRACING=ON")
    assert not list((tmp_path / "out").rglob("manifest.json"))


def test_missing_decoder_is_refused(tmp_path, monkeypatch):
    with pytest.raises(CodecError, match="nowhere/DecoderApp: no such executable VTM"):
        find_vtm_decoder(tmp_path / "nowhere" / "DecoderApp")
    monkeypatch.setenv(ENV, str(tmp_path / "gone"))
    with pytest.raises(CodecError, match=rf"gone \(from \${ENV}\)"):
        find_vtm_decoder()
    monkeypatch.delenv(ENV)
    assert find_vtm_decoder() is None


def test_decode_command_is_pure():
    cmd = vtm_decode_command("/vtm/DecoderApp", "b.266", "r.yuv", "t.vtmbmsstats")
    assert cmd == ["/vtm/DecoderApp", "-b", "b.266", "-d", "10", "-o", "r.yuv",
                   "--TraceFile=t.vtmbmsstats",
                   "--TraceRule=D_BLOCK_STATISTICS_ALL:poc>=0"]


# --- with a real tracing DecoderApp --------------------------------------------------------

@needs_vtm
def test_vtm_on_the_asset_gives_the_checked_in_trace(ffmpeg_rec, tmp_path, ai):
    bitstream, trace, pocs = ai
    side = vtm_side_info(DECODER, bitstream, ffmpeg_rec, tmp_path, W, H, pocs, 64)
    want = vtm_trace_planes(trace, W, H, pocs)
    got = {w: np.fromfile(side[f"{w}_map"], np.uint8).reshape(len(pocs), H, W)
           for w in ("depth", "qp")}
    for what in ("depth", "qp"):
        np.testing.assert_array_equal(got[what], np.stack(want[what]))
    assert side["settings"]["depth_statistic"] == "Depth"
    assert side["settings"]["ctu_size"] == 64
    assert side["settings"]["dual_tree_pictures"] == len(pocs)
    assert (tmp_path / BLOCKSTATS_NAME).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.raw", "qp.raw",
                                                          BLOCKSTATS_NAME]


@needs_vtm
def test_vtm_side_info_refuses_a_reconstruction_that_differs(ffmpeg_rec, tmp_path, ai):
    bitstream, _, pocs = ai
    bad = _corrupt(ffmpeg_rec, tmp_path / "rec.yuv", 0)
    with pytest.raises(CodecError, match="VTM's picture 0 differs"):
        vtm_side_info(DECODER, bitstream, bad, tmp_path, W, H, pocs, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.yuv"]  # nothing else left


@needs_vtm
def test_encode_extract_end_to_end_with_vtm_depth(tmp_path):
    """encode --vtm-decoder → manifest with depth and QP planes, the kept trace; extract
    fills `depth` with no flags; the shard's depth is VTM's."""
    import json

    from codecnn.io.shard import open_shard

    out = tmp_path / "coded"
    run_cli("encode", "carphone_pristine", "--qp", "27", "37", "--frames", "2", "--crop",
            "176x136", "-o", out, "--vtm-decoder", DECODER, check=True)
    for qp in (27, 37):
        d = out / "carphone_pristine" / "vvc-ai" / f"qp{qp}"
        m = json.loads((d / "manifest.json").read_text())
        assert m["depth_map"] == "depth.raw" and m["qp_map"] == "qp.raw"
        assert m["encoder_settings"]["depth_statistic"] == "Depth"
        assert "IBC=0" in m["encoder_settings"]["options"][-1]
        assert m["versions"]["vtm"] and "vtm_decode" in m["commands"]
        planes = vtm_trace_planes(d / BLOCKSTATS_NAME, 176, 136, [0, 1])
        depth = np.fromfile(d / "depth.raw", np.uint8).reshape(2, 136, 176)
        np.testing.assert_array_equal(depth, np.stack(planes["depth"]))
        assert (np.fromfile(d / "qp.raw", np.uint8) == qp).all()
        run_cli("extract", "--manifest", d / "manifest.json", "-o", tmp_path / "shards",
                check=True)  # no map flags: the manifest says where depth is
        with open_shard(tmp_path / "shards" / f"carphone_pristine_qp{qp}.h5") as f:
            assert f.attrs["has_depth"]
            meta = f["meta"][...]
            i = int(np.flatnonzero((meta["poc"] == 1) & (meta["ctu_x"] == 0)
                                   & (meta["ctu_y"] == 0))[0])
            np.testing.assert_array_equal(f["depth"][i][2:-2, 2:-2], depth[1, :128, :128])
