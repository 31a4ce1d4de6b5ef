"""HEVC through x265 + libde265: real encodes of carphone frames, real decodes, real maps.

References: FFmpeg's own `hevc` decoder for the reconstruction, FFmpeg's trace_headers for
the slice QPs, and libde265's own CB-grid drawing for the depth map.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from codecnn.codec import commands, hevc, hevc_maps, libde265
from codecnn.codec.bitstream import split_annexb
from codecnn.codec.codecs import CODECS, read_headers
from codecnn.codec.commands import decode_command, trace_command
from codecnn.codec.encode import encode_sequence
from codecnn.codec.manifest import load_manifest
from codecnn.codec.samples import find_sample
from codecnn.errors import CodecError

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CARPHONE = find_sample("carphone_pristine")[2]


def encode(out: Path, qp: int, config: str, frames: int = 3, crop=None, name="carphone"):
    """Real x265 encodes of the first carphone frames through `codecnn.codec.encode`."""
    (seq,) = encode_sequence(CARPHONE, [qp], config, frames, out, codec="hevc", crop=crop,
                             name=name, progress=False)
    return seq


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """{config: CodedSequence}: 3 carphone frames, AI at QP 32 and RA at QP 27."""
    root = tmp_path_factory.mktemp("hevc")
    proc = run_cli("encode", CARPHONE, "--codec", "hevc", "--qp", "27", "--config", "ra",
                   "--frames", "3", "--name", "carphone", "-o", root / "ra")
    assert proc.returncode == 0, proc.stderr
    assert "| carphone | 27 |" in proc.stdout
    ra = load_manifest(root / "ra" / "carphone" / "hevc-ra" / "qp27" / "manifest.json")
    return {"ai": encode(root / "ai", 32, "ai"), "ra": ra}


def ffmpeg_decode(bitstream: str, out: Path) -> bytes:
    subprocess.run(decode_command(FFMPEG, CODECS["hevc"], bitstream, out), check=True,
                   capture_output=True)
    return out.read_bytes()


def planes(path: str, frames: int, height: int = 144, width: int = 176) -> np.ndarray:
    return np.fromfile(path, np.uint8).reshape(frames, height, width)


def libde265_yuv(bitstream: str) -> bytes:
    return b"".join(b"".join(p.tobytes() for p in pic.planes)
                    for pic in libde265.iter_decode(bitstream))


@pytest.mark.parametrize("config", ["ai", "ra"])
def test_libde265_reconstruction_equals_ffmpeg_hevc_decode(coded, config, tmp_path):
    seq = coded[config]
    assert seq.codec == "hevc" and seq.frames == 3 and seq.bit_depth == 10
    ours = libde265_yuv(seq.bitstream)
    assert len(ours) == 3 * 176 * 144 * 3 // 2 * 2
    assert ours == ffmpeg_decode(seq.bitstream, tmp_path / "ff.yuv")
    assert ours == Path(seq.reconstruction).read_bytes()


def test_decoders_disagreeing_is_an_error(coded, tmp_path):
    seq = coded["ai"]
    bad = tmp_path / "bad.yuv"
    data = bytearray(Path(seq.reconstruction).read_bytes())
    data[-2] ^= 1  # one chroma sample of the last picture
    bad.write_bytes(bytes(data))
    sps, pics = read_headers(FFMPEG, "hevc", seq.bitstream)
    with pytest.raises(CodecError, match="picture 2 differs"):
        hevc_maps.decode_hevc(seq.bitstream, sps, pics, depth_path=tmp_path / "d.raw",
                         reference_rec=bad)
    assert not (tmp_path / "d.raw").exists() and not list(tmp_path.glob(".*tmp"))


def test_manifest_round_trip_and_headers(coded):
    for config, seq in coded.items():
        back = load_manifest(Path(seq.bitstream).parent / "manifest.json")
        assert back == seq
        assert back.depth_map_format == back.qp_map_format == {"kind": "raw", "granularity": 1}
        assert Path(back.bitstream).name == "bitstream.265"
        assert [p.poc for p in back.pictures] == [0, 1, 2]
        assert all(p.slice_qp == back.qp for p in back.pictures)
        assert sum(p.bits for p in back.pictures) == back.bitstream_bits
        assert back.encoder_settings["cu_qp_delta_enabled"] is False
        types = [p.slice_type for p in back.pictures]
        assert types == (["I", "I", "I"] if config == "ai" else ["I", "B", "P"])


def test_trace_poc_and_qp_in_decode_order(coded):
    sps, pics = read_headers(FFMPEG, "hevc", coded["ra"].bitstream)
    assert (sps.width, sps.height, sps.ctb_size, sps.min_cb_size) == (176, 144, 64, 8)
    assert [p.poc for p in pics] == [0, 2, 1]  # I0 P2 B1: decode order differs from output
    assert [p.slice_qp for p in pics] == [27, 27, 27]
    _, ai = read_headers(FFMPEG, "hevc", coded["ai"].bitstream)
    assert [p.nal_unit_type for p in ai] == [20, 20, 20]  # every picture an IDR, all POC 0 ...
    assert [p.poc for p in ai] == [0, 1, 2]  # ... made monotone across the sequences


def check_depth(depth: np.ndarray, grid: np.ndarray, ctb: int = 64) -> None:
    """Every CB rectangle has one depth, and the depth map redraws libde265's grid."""
    assert depth.min() >= 0 and depth.max() <= 3
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            s = ctb >> int(depth[y, x])
            x0, y0 = x - x % s, y - y % s
            block = depth[y0 : y0 + s, x0 : x0 + s]
            assert (block == depth[y, x]).all(), (x, y)
    assert np.array_equal(libde265.cb_grid_from_depth(depth, ctb), grid)


@pytest.mark.parametrize("config", ["ai", "ra"])
def test_depth_map_is_the_cb_quadtree(coded, config):
    seq = coded[config]
    depth = planes(seq.depth_map, 3)
    pics = list(libde265.iter_decode(seq.bitstream))
    assert [p.decode_index for p in pics] == ([0, 1, 2] if config == "ai" else [0, 2, 1])
    for k, pic in enumerate(pics):
        assert pic.coded_size == (176, 144)
        check_depth(depth[k], pic.cb_grid)
    # real partitions, not a constant: several CB sizes occur
    assert len(np.unique(depth)) >= 2


def test_qp_map_is_the_nominal_qp_everywhere(coded):
    for seq in coded.values():
        qp = planes(seq.qp_map, 3)
        assert (qp == seq.qp).all()
        # and it came from libde265's drawing: the grey level of the nominal QP everywhere
        for pic in libde265.iter_decode(seq.bitstream):
            assert (pic.qp_grey == libde265.grey_of_qp(seq.qp)).all()


def test_qp_grey_levels_round_trip():
    qps = np.arange(-12, 52)
    greys = libde265.grey_of_qp(qps)
    inside = (qps > 20) & (qps < 40)
    assert len(np.unique(greys[(qps >= 20) & (qps <= 40)])) == 21
    back = np.array([libde265.qp_from_grey(np.array([g]), 30)[0] for g in greys])
    assert (back[inside] == qps[inside]).all()  # exact from the drawing alone
    # saturated levels: the slice QP from the headers takes over
    assert libde265.qp_from_grey(np.array([0], np.uint8), 17)[0] == 17
    assert libde265.qp_from_grey(np.array([255], np.uint8), 45)[0] == 45


def test_edge_ctbs_and_conformance_window(tmp_path):
    """100×76 is not a multiple of 8: x265 codes 104×80 and crops; CTBs cut by the edge."""
    seq = encode(tmp_path, 37, "ai", frames=1, crop=(100, 76), name="edge")
    assert seq.encoder_settings["conformance_window"] == [0, 4, 0, 4]
    assert libde265_yuv(seq.bitstream) == ffmpeg_decode(seq.bitstream, tmp_path / "ff.yuv")
    depth = planes(seq.depth_map, 1, 76, 100)[0]
    (pic,) = libde265.iter_decode(seq.bitstream)
    assert pic.coded_size == (104, 80)
    check_depth(depth, pic.cb_grid)
    assert (planes(seq.qp_map, 1, 76, 100) == 37).all()


def test_pillow_heif_copy_alone_decodes_bit_exactly(coded, monkeypatch, tmp_path):
    """The path a machine without the system libde265-0 takes."""
    monkeypatch.delenv(libde265.ENV_LIBRARY, raising=False)
    monkeypatch.setenv(libde265.ENV_SKIP, "system")
    lib = libde265.find_libde265()
    assert "pillow_heif.libs" in lib._name
    seq = coded["ra"]
    assert libde265_yuv(seq.bitstream) == ffmpeg_decode(seq.bitstream, tmp_path / "ff.yuv")


def test_missing_library_names_the_three_places(monkeypatch, tmp_path):
    monkeypatch.setenv(libde265.ENV_LIBRARY, str(tmp_path / "nope.so"))
    with pytest.raises(CodecError) as e:
        libde265.find_libde265()
    msg = str(e.value)
    for place in ("CODECNN_LIBDE265", "nope.so", "libde265.so.0", "pillow_heif.libs"):
        assert place in msg, msg
    monkeypatch.delenv(libde265.ENV_LIBRARY)
    monkeypatch.setenv(libde265.ENV_SKIP, "system,pillow-heif")
    with pytest.raises(CodecError) as e:
        libde265.find_libde265()
    msg = str(e.value)
    for place in ("CODECNN_LIBDE265 (not set)", "system libde265.so.0", "pillow_heif.libs"):
        assert place in msg, msg


def test_fixed_qp_params_hold_in_every_config():
    for config in commands.CONFIGS:
        params = commands.x265_params(config)
        for p in ("aq-mode=0", "cutree=0", "ipratio=1", "pbratio=1"):
            assert p in params.split(":")
    assert "keyint=1" in commands.x265_params("ai").split(":")
    assert "keyint=16" in commands.x265_params("ra", 16).split(":")
    opts = commands.x265_options(30, "ra", "fast")
    assert opts[:4] == ["-preset", "fast", "-qp", "30"]
    with pytest.raises(CodecError, match="config"):
        commands.x265_params("ld")
    with pytest.raises(CodecError, match="preset"):
        commands.x265_options(30, "ai", "turbo")


def test_cli_missing_library_is_one_line_naming_the_three_places(monkeypatch, tmp_path):
    monkeypatch.setenv(libde265.ENV_LIBRARY, str(tmp_path / "nope.so"))
    proc = run_cli("encode", CARPHONE, "--codec", "hevc", "--qp", "27", "--frames", "1",
                   "-o", tmp_path / "out")
    assert_one_line_error(proc, "libde265 not found", "nope.so", "libde265.so.0",
                          "pillow_heif.libs")
    assert not (tmp_path / "out").exists()  # checked before any work
    monkeypatch.delenv(libde265.ENV_LIBRARY)
    monkeypatch.setenv(libde265.ENV_SKIP, "system,pillow-heif")
    proc = run_cli("encode", CARPHONE, "--codec", "hevc", "--qp", "27", "--frames", "1",
                   "-o", tmp_path / "out")
    assert_one_line_error(proc, "CODECNN_LIBDE265 (not set)", "libde265.so.0", "pillow_heif")


def test_cli_hevc_qp_above_51_is_one_line(tmp_path):
    proc = run_cli("encode", CARPHONE, "--codec", "hevc", "--qp", "52", "--frames", "1",
                   "-o", tmp_path)
    assert_one_line_error(proc, "QP 52", "0..51")


def test_flat_inter_pictures_use_64x64_cus(tmp_path):
    """Depth 0 is real: a flat grey picture is coded as 64×64 CUs in P/B pictures (x265
    evaluates no 64×64 intra CUs, so its intra pictures stop at 32×32: depth 1)."""
    flat = tmp_path / "flat_192x128_10bit.yuv"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=gray:s=192x128:r=30,format=yuv420p10le", "-frames:v", "3",
                    "-f", "rawvideo", str(flat)], check=True)
    (seq,) = encode_sequence(flat, [37], "ra", None, tmp_path / "o", codec="hevc", size=(192, 128),
                             bit_depth=10, chroma="420", progress=False)
    depth = planes(seq.depth_map, 3, 128, 192)
    assert [p.slice_type for p in seq.pictures] == ["I", "B", "P"]
    assert (depth[0] == 1).all() and (depth[1:] == 0).all()
    for k, pic in enumerate(libde265.iter_decode(seq.bitstream)):
        check_depth(depth[k], pic.cb_grid)


def random_quadtree(rng, w: int, h: int, ctb: int = 64, min_cb: int = 8) -> np.ndarray:
    """A random CU depth map: each block splits with probability 1/2 (always at the edge)."""
    ph, pw = -(-h // ctb) * ctb, -(-w // ctb) * ctb
    depth = np.zeros((ph, pw), np.uint8)

    def build(x: int, y: int, s: int, d: int) -> None:
        if s > min_cb and (x + s > w or y + s > h or rng.random() < 0.5):
            for dy in (0, s // 2):
                for dx in (0, s // 2):
                    build(x + dx, y + dy, s // 2, d + 1)
        else:
            depth[y : y + s, x : x + s] = d

    for y in range(0, ph, ctb):
        for x in range(0, pw, ctb):
            build(x, y, ctb, 0)
    return depth[:h, :w]


def test_random_quadtrees_round_trip_through_the_grid():
    """Random 64×64 quadtrees down to 8×8 (edge CTBs cut at 8-sample steps): drawing the
    grid and reading it back gives the same depth."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = 8 * int(rng.integers(1, 20)), 8 * int(rng.integers(1, 20))
        depth = random_quadtree(rng, w, h)
        grid = libde265.cb_grid_from_depth(depth)
        assert np.array_equal(libde265.depth_from_cb_grid(grid, 64, 8), depth)


def test_ra_across_idr_pictures(tmp_path):
    """20 frames, an IDR every 8: POC restarts in the stream but stays monotone in the
    manifest, libde265 outputs every picture, and the maps keep matching its grid."""
    (seq,) = encode_sequence(CARPHONE, [32], "ra", 20, tmp_path, codec="hevc",
                             intra_period=8, progress=False)
    assert [p.poc for p in seq.pictures] == list(range(20))
    assert [k for k, p in enumerate(seq.pictures) if p.slice_type == "I"] == [0, 8, 16]
    _, pics = read_headers(FFMPEG, "hevc", seq.bitstream)
    assert {p.nal_unit_type for p in pics if p.slice_type == "I"} <= {19, 20}  # IDR pictures
    depth = planes(seq.depth_map, 20)
    n = 0
    for k, pic in enumerate(libde265.iter_decode(seq.bitstream)):
        check_depth(depth[k], pic.cb_grid)
        n += 1
    assert n == 20
    assert (planes(seq.qp_map, 20) == 32).all()


def test_suffix_sei_and_eos_stay_in_their_access_unit():
    """H.265 7.4.2.4.4: a suffix SEI (40) or EOS (36) after a picture's slices belongs to that
    picture; a prefix SEI (39) or parameter set opens the next one."""
    def nal(nal_type: int, payload: bytes) -> bytes:
        return b"\x00\x00\x00\x01" + bytes([nal_type << 1, 1]) + payload

    idr = nal(19, b"\x80" + b"\x11" * 50)  # first_slice_segment_in_pic_flag = 1
    suffix_sei = nal(40, b"\x22" * 100)
    prefix_sei = nal(39, b"\x33" * 10)
    trail = nal(1, b"\x80" + b"\x44" * 30)
    eos = nal(36, b"")
    stream = idr + suffix_sei + prefix_sei + trail + eos
    sizes = hevc.access_unit_sizes(stream)
    assert sizes == [len(idr + suffix_sei), len(prefix_sei + trail + eos)]
    assert sum(sizes) == len(stream)


def ffmpeg_packet_bytes(bitstream) -> list[int]:
    """Sizes of the packets FFmpeg's HEVC parser cuts the stream into (trace_headers)."""
    proc = subprocess.run(trace_command(FFMPEG, CODECS["hevc"], bitstream), check=True,
                          capture_output=True, text=True)
    return [int(n) for n in re.findall(r"Packet: (\d+) bytes", proc.stderr)]


def test_bits_per_picture_sum_to_bitstream_and_match_ffmpeg_packets(coded, tmp_path):
    for seq in coded.values():
        data = Path(seq.bitstream).read_bytes()
        assert seq.bitstream_bits == 8 * len(data)
        assert sum(p.bits for p in seq.pictures) == seq.bitstream_bits
        assert hevc.access_unit_sizes(data) == ffmpeg_packet_bytes(seq.bitstream)
    # x265 with picture hashes: a suffix SEI after every picture's slices (type 40), which
    # belongs to that picture, not to the next.
    bs = tmp_path / "hash.265"
    subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", CARPHONE,
                    "-frames:v", "5", "-c:v", "libx265", "-preset", "ultrafast", "-qp", "32",
                    "-x265-params", "hash=1:info=0:bframes=2:keyint=4", "-f", "hevc", str(bs)],
                   check=True, capture_output=True)
    data = bs.read_bytes()
    assert 40 in [hevc.nal_type(n) for n in split_annexb(data)]
    sizes = hevc.access_unit_sizes(data)
    assert len(sizes) == 5 and sum(sizes) == len(data)
    assert sizes == ffmpeg_packet_bytes(bs)


def test_32x32_ctbs_keep_depth_counted_from_64(tmp_path):
    """x265 ultrafast codes 32×32 CTBs: an unsplit CTB is a 32×32 CU, depth 1, as in a
    64×64-CTB stream; the depth plane still redraws libde265's CB grid."""
    (seq,) = encode_sequence(CARPHONE, [32], "ai", 2, tmp_path, codec="hevc",
                             preset="ultrafast", name="carphone", progress=False)
    assert seq.encoder_settings["ctb_size"] == 32
    depth = planes(seq.depth_map, 2)
    assert depth.min() >= 1 and depth.max() <= 3
    for k, pic in enumerate(libde265.iter_decode(seq.bitstream)):
        check_depth(depth[k] - 1, pic.cb_grid, ctb=32)
    assert len(np.unique(depth)) >= 2


def test_per_cu_qp_from_adaptive_quantisation(tmp_path):
    """x265 with AQ varies the QP per CU (cu_qp_delta): the QP plane holds those QPs, one
    per CU, not the slice QP everywhere."""
    bs = tmp_path / "aq.265"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-i", CARPHONE, "-frames:v", "1",
                    "-c:v", "libx265", "-crf", "28", "-x265-params",
                    "aq-mode=2:aq-strength=2:keyint=1:info=0", str(bs)],
                   check=True, capture_output=True)
    sps, pics = read_headers(FFMPEG, "hevc", bs)
    assert pics[0].cu_qp_delta
    hevc_maps.decode_hevc(bs, sps, pics, None, tmp_path / "depth.raw", tmp_path / "qp.raw")
    qp = planes(str(tmp_path / "qp.raw"), 1)[0].astype(int)
    depth = planes(str(tmp_path / "depth.raw"), 1)[0]
    assert len(np.unique(qp)) >= 4  # a constant fill fails here
    assert abs(np.median(qp) - pics[0].slice_qp) <= 6
    for y in range(0, 144, 8):  # one QP per CU: constant over each CU's rectangle
        for x in range(0, 176, 8):
            s = 64 >> int(depth[y, x])
            y0, x0 = y - y % s, x - x % s
            assert (qp[y0:y0 + s, x0:x0 + s] == qp[y0, x0]).all(), (x, y)


# --------------------------------------------------------------------------- YUView statistics

def paint_back(stats: Path, frames: int, width: int, height: int):
    """The depth and QP planes the side-info reader paints from a .vtmbmsstats file (its
    format guessed from the suffix: `vtm-trace`)."""
    from codecnn.io.sideinfo import VtmTraceMap, open_map

    maps = [open_map(stats, None, what, width, height, range(frames))
            for what in ("depth", "qp")]
    assert all(isinstance(m, VtmTraceMap) for m in maps)
    return [np.stack([m.frame(k) for k in range(frames)]) for m in maps]


@pytest.mark.parametrize("config", ["ai", "ra"])
def test_encode_writes_yuview_block_stats_of_the_raw_planes(coded, config):
    """The manifest names depth_qp.vtmbmsstats; YUView can read it; painted back it equals
    the raw depth and QP planes picture for picture (RA: output order, not decode order)."""
    from yuview_format import read_like_yuview

    seq = coded[config]
    stats = Path(seq.bitstream).parent / seq.encoder_settings["block_stats"]["file"]
    assert stats.name == hevc_maps.BLOCKSTATS_NAME
    size, types, data = read_like_yuview(stats)
    assert size == (176, 144) and sorted(data) == [0, 1, 2]
    assert types == {"Depth": ("Integer", (0, 3)), "QP": ("Integer", (0, 51))}
    depth, qp = paint_back(stats, 3, 176, 144)
    assert np.array_equal(depth, planes(seq.depth_map, 3))
    assert np.array_equal(qp, planes(seq.qp_map, 3))
    for per in data.values():  # one square CU per line, of the size its depth says
        assert [r[:4] for r in per["Depth"]] == [r[:4] for r in per["QP"]]
        assert all(w == h == 64 >> d for _, _, w, h, d in per["Depth"])


def test_block_stats_with_per_cu_qp_and_cut_edge_ctbs(tmp_path):
    """AQ gives each CU its own QP, and 100×76 (coded 104×80) cuts the edge CUs: the
    rectangles stop at the picture edge and still paint back the raw planes exactly."""
    from yuview_format import read_like_yuview

    bs = tmp_path / "aq.265"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-i", CARPHONE, "-frames:v", "2",
                    "-vf", "crop=100:76:0:0", "-c:v", "libx265", "-crf", "28", "-x265-params",
                    "aq-mode=2:aq-strength=2:keyint=1:info=0", str(bs)],
                   check=True, capture_output=True)
    sps, pics = read_headers(FFMPEG, "hevc", bs)
    assert (sps.coded_width, sps.coded_height) == (104, 80)
    hevc_maps.decode_hevc(bs, sps, pics, None, tmp_path / "depth.raw", tmp_path / "qp.raw",
                     stats_path=tmp_path / "s.vtmbmsstats")
    depth, qp = paint_back(tmp_path / "s.vtmbmsstats", 2, 100, 76)
    assert np.array_equal(depth, planes(str(tmp_path / "depth.raw"), 2, 76, 100))
    assert np.array_equal(qp, planes(str(tmp_path / "qp.raw"), 2, 76, 100))
    assert len(np.unique(qp)) >= 4
    _, _, data = read_like_yuview(tmp_path / "s.vtmbmsstats")
    assert any(x + w == 100 and w < h for x, _, w, h, _ in data[0]["Depth"])  # cut at the edge
    assert not list(tmp_path.glob(".*tmp"))


def test_cu_blocks_tile_random_quadtrees():
    rng = np.random.default_rng(1)
    for _ in range(20):
        h, w = 8 * int(rng.integers(1, 20)), 8 * int(rng.integers(1, 20))
        depth = random_quadtree(rng, w, h)
        painted = np.full((h, w), 255, np.uint8)
        for x, y, bw, bh in hevc_maps.cu_blocks(depth):
            assert (painted[y:y + bh, x:x + bw] == 255).all()  # no overlap
            painted[y:y + bh, x:x + bw] = depth[y, x]
        assert np.array_equal(painted, depth)
    with pytest.raises(CodecError, match="not a quadtree"):
        hevc_maps.cu_blocks(np.array([[0, 1], [1, 1]], np.uint8))
