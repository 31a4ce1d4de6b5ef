"""Real VVC coding: VVenC encode, FFmpeg's native decode, QP and bits read from the bitstream."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codecnn.codec.commands import trace_command
from codecnn.codec.encode import encode_sequence, summarize
from codecnn.codec.ffmpeg import find_ffmpeg, run
from codecnn.codec.manifest import load_manifest
from codecnn.codec.samples import find_sample
from codecnn.codec.vvc import access_unit_sizes, coded_size, parse_trace, picture_infos
from codecnn.errors import CodecError
from codecnn.io.metrics import psnr
from codecnn.io.yuv import YuvFormat, YuvWriter, open_yuv

CARPHONE = find_sample("carphone_pristine")[2]


@pytest.fixture(scope="module")
def ai(tmp_path_factory):
    out = tmp_path_factory.mktemp("ai")
    return encode_sequence(CARPHONE, [22, 32, 37], "ai", 3, out, preset="faster", jobs=2,
                           progress=False)


@pytest.fixture(scope="module")
def ra(tmp_path_factory):
    out = tmp_path_factory.mktemp("ra")
    return encode_sequence(CARPHONE, [27], "ra", 9, out, preset="faster",
                           progress=False)[0]


def fmt_of(seq):
    return YuvFormat(seq.width, seq.height, seq.bit_depth, seq.chroma)


def trace_text(seq):
    ff = find_ffmpeg()
    return run(trace_command(ff.path, _vvc(), seq.bitstream), "trace").stderr.decode()


def _vvc():
    from codecnn.codec.codecs import get_codec

    return get_codec("vvc")


def test_layout_format_and_frame_count(ai, tmp_path):
    for seq in ai:
        assert (seq.width, seq.height, seq.bit_depth, seq.chroma) == (176, 144, 10, "420")
        assert seq.frames == 3 and len(seq.pictures) == 3
        fmt = fmt_of(seq)
        assert len(open_yuv(seq.reconstruction, fmt)) == 3
        assert len(open_yuv(seq.original, fmt)) == 3
        man = load_manifest(f"{seq.reconstruction[:-len('rec.yuv')]}manifest.json")
        assert man == seq
        assert man.bitstream.endswith(f"qp{seq.qp}/bitstream.266")
        assert man.versions["libvvenc"] != "unknown" and man.versions["ffmpeg"]
        assert man.commands["encode"][0] == find_ffmpeg().path
        assert "IntraQPOffset=0:GOPQPA=0:BIM=0:IntraPeriod=1" in man.commands["encode"]
    # no temporary file is left behind
    assert not list(Path(ai[0].original).parent.rglob("*.tmp"))


def test_psnr_falls_as_qp_rises(ai):
    rows = [summarize(s) for s in ai]
    assert [r.qp for r in rows] == [22, 32, 37]
    assert rows[0].psnr_y > rows[1].psnr_y > rows[2].psnr_y > 25
    assert rows[0].kbps > rows[1].kbps > rows[2].kbps


def test_all_intra_slice_qp_is_nominal(ai):
    for seq in ai:
        assert [p.slice_qp for p in seq.pictures] == [seq.qp] * 3
        assert [p.slice_type for p in seq.pictures] == ["I"] * 3
        assert [p.poc for p in seq.pictures] == [0, 1, 2]
        # the reason it is exact: VVenC switched CU QP deltas off in the PPS
        assert "pps_cu_qp_delta_enabled_flag                                0 = 0" in \
            trace_text(seq)


def test_bits_per_picture_sum_to_bitstream_and_match_ffmpeg_packets(ai, ra):
    for seq in [*ai, ra]:
        data = Path(seq.bitstream).read_bytes()
        assert seq.bitstream_bits == 8 * len(data)
        assert sum(p.bits for p in seq.pictures) == seq.bitstream_bits
        # FFmpeg's VVC parser splits the same stream into the same access units
        packets = [int(n) for n in re.findall(r"Packet: (\d+) bytes", trace_text(seq))]
        assert access_unit_sizes(data) == packets


def test_random_access_intra_has_nominal_qp_and_gop_offsets(ra):
    pics = ra.pictures
    assert [p.poc for p in pics] == list(range(9))
    assert pics[0].slice_type == "I"  # POC 0 is the IDR, as in the JVET CTC
    intra = [p for p in pics if p.slice_type == "I"]
    others = [p for p in pics if p.slice_type != "I"]
    assert intra and others
    assert all(p.slice_qp == 27 for p in intra)
    assert all(p.slice_qp > 27 for p in others)  # hierarchical-B QP offsets
    # deeper temporal layers get larger QP offsets
    _, dec = parse_trace(trace_text(ra))
    by_tid: dict[int, set[int]] = {}
    for p in dec:
        by_tid.setdefault(p.temporal_id, set()).add(p.slice_qp)
    tids = sorted(by_tid)
    assert all(max(by_tid[a]) <= min(by_tid[b]) for a, b in zip(tids, tids[1:], strict=False))
    # bits of the intra picture dominate
    assert max(pics, key=lambda p: p.bits).slice_type == "I"


def test_random_access_output_order_matches_original(ra):
    """Frame k of the reconstruction is closest to frame k of the original (POC order)."""
    fmt = fmt_of(ra)
    orig, rec = open_yuv(ra.original, fmt), open_yuv(ra.reconstruction, fmt)
    for k in range(ra.frames):
        scores = [psnr(rec.luma(k), orig.luma(j)) for j in range(ra.frames)]
        assert int(np.argmax(scores)) == k


def test_rec_equals_independent_ffmpeg_decode(ai, ra):
    """Decode again with FFmpeg's own probing (no forced demuxer/decoder), luma only."""
    for seq in (ai[1], ra):
        out = subprocess.run(
            [find_ffmpeg().path, "-hide_banner", "-loglevel", "error", "-i", seq.bitstream,
             "-vf", "extractplanes=y", "-f", "rawvideo", "-pix_fmt", "gray10le", "-"],
            capture_output=True, check=True).stdout
        theirs = np.frombuffer(out, "<u2").reshape(seq.frames, seq.height, seq.width)
        rec = open_yuv(seq.reconstruction, fmt_of(seq))
        for k in range(seq.frames):
            np.testing.assert_array_equal(rec.luma(k), theirs[k])


def test_size_not_multiple_of_8_is_padded_with_conformance_window(tmp_path):
    seq, = encode_sequence(CARPHONE, [32], "ai", 2, tmp_path, preset="faster",
                           crop=(100, 70), progress=False)
    assert (seq.width, seq.height) == (100, 70)
    assert len(open_yuv(seq.reconstruction, fmt_of(seq))) == 2
    cw, ch, win = coded_size(trace_text(seq))
    assert (cw, ch) == (104, 72)
    assert (cw - win[0] - win[1], ch - win[2] - win[3]) == (100, 70)
    assert seq.encoder_settings["coded_width"] == 104
    assert summarize(seq).psnr_y > 30


def test_odd_size_is_refused_with_a_crop_hint(tmp_path):
    chelsea = find_sample("chelsea")[2]  # a 451x300 image
    with pytest.raises(CodecError, match=r"chelsea.png: 451x300 has an odd width.*--crop 450x300"):
        encode_sequence(chelsea, [32], "ai", None, tmp_path, preset="faster",
                        progress=False)
    raw = tmp_path / "odd_35x19_8bit.yuv"
    raw.write_bytes(bytes(YuvFormat(35, 19).frame_bytes))
    with pytest.raises(CodecError, match=r"odd_35x19_8bit.yuv: 35x19 has an odd width"):
        encode_sequence(raw, [32], "ai", None, tmp_path, preset="faster",
                        progress=False)
    seq, = encode_sequence(chelsea, [37], "ai", None, tmp_path, preset="faster", crop=(450, 300),
                           progress=False)
    assert (seq.width, seq.height, seq.frames) == (450, 300, 1)


def test_raw_8bit_and_gray_input_become_exact_10bit_originals(tmp_path):
    rng = np.random.default_rng(0)
    for chroma in ("420", "400"):
        fmt = YuvFormat(64, 48, 8, chroma)
        src = tmp_path / f"noise{chroma}_64x48_8bit_{chroma}.yuv"
        frames = [tuple(rng.integers(0, 256, s, dtype=np.uint8) for s in fmt.plane_shapes)
                  for _ in range(2)]
        with YuvWriter(src, fmt) as w:
            for f in frames:
                w.write(f)
        seq, = encode_sequence(src, [37], "ai", None, tmp_path / "out", preset="faster",
                               progress=False)
        orig = open_yuv(seq.original, fmt_of(seq))
        assert seq.frames == 2 and seq.fps == 30.0
        for k in range(2):
            y, u, v = orig.planes(k)
            np.testing.assert_array_equal(y, frames[k][0].astype(np.uint16) << 2)
            if chroma == "420":
                np.testing.assert_array_equal(u, frames[k][1].astype(np.uint16) << 2)
            else:
                assert (u == 512).all() and (v == 512).all()


def test_existing_outputs_need_overwrite(tmp_path):
    kw = dict(frames=1, preset="faster", progress=False, crop=(64, 64))
    encode_sequence(CARPHONE, [37], "ai", out_dir=tmp_path, **kw)
    with pytest.raises(CodecError, match="exists; pass --overwrite"):
        encode_sequence(CARPHONE, [37], "ai", out_dir=tmp_path, **kw)
    # another QP into the same source directory reuses the identical original
    encode_sequence(CARPHONE, [32], "ai", out_dir=tmp_path, **kw)
    with pytest.raises(CodecError, match="different content"):
        encode_sequence(CARPHONE, [27], "ai", out_dir=tmp_path, **{**kw, "frames": 2})
    seq, = encode_sequence(CARPHONE, [37], "ai", out_dir=tmp_path, overwrite=True, **kw)
    assert seq.frames == 1


def test_vvenc_defaults_would_shift_the_slice_qp(ai):
    """Why the fixed-QP options matter: with VVenC's defaults (QPA on) the headers show
    slice QPs away from the nominal QP and CU QP deltas switched on."""
    ff = find_ffmpeg()
    seq = ai[1]
    bs = Path(seq.bitstream).with_name("defaults.266")
    run([ff.path, "-hide_banner", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
         "-video_size", "176x144", "-i", seq.original, "-c:v", "libvvenc", "-preset", "faster",
         "-qp", str(seq.qp), "-vvenc-params", "IntraPeriod=1", "-f", "vvc", str(bs)], "encode")
    text = run(trace_command(ff.path, _vvc(), bs), "trace").stderr.decode()
    qps = [p.slice_qp for p in picture_infos(text, bs.read_bytes())]
    assert len(qps) == 3 and any(q != seq.qp for q in qps)
    assert "pps_cu_qp_delta_enabled_flag                                1 = 1" in text
    bs.unlink()
