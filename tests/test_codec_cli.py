"""`codecnn encode` / `codecnn samples` through the real command line, good and bad input."""

from __future__ import annotations

import stat

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from codecnn.codec.manifest import load_manifest
from codecnn.codec.samples import find_sample
from codecnn.io.yuv import YuvFormat

CARPHONE = str(find_sample("carphone_pristine")[2])

FAKE_FFMPEG = """#!/bin/sh
case "$*" in
  *-version*) echo "ffmpeg version 6.1-fake Copyright (c) the FFmpeg developers" ;;
  *-encoders*) echo "Encoders:"; echo " V....D libx264              H.264" ;;
  *-decoders*) echo "Decoders:"; echo " VFS..D h264                 H.264" ;;
  *-bsfs*) echo "Bitstream filters:"; echo "trace_headers" ;;
esac
"""


@pytest.fixture
def fake_ffmpeg(tmp_path):
    path = tmp_path / "ffmpeg-without-vvc"
    path.write_text(FAKE_FFMPEG)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_encode_cli_writes_layout_and_prints_table(tmp_path):
    out = tmp_path / "coded"
    proc = run_cli("encode", CARPHONE, "--qp", "27", "37", "--frames", "2", "--crop", "64x64",
                   "--preset", "faster", "-j", "2", "-o", out, check=True)
    assert "| carphone_pristine | 27 |" in proc.stdout
    assert "| carphone_pristine | 37 |" in proc.stdout
    src = out / "carphone_pristine"
    assert sorted(p.name for p in src.iterdir()) == ["original.yuv", "vvc-ai"]
    assert sorted(p.name for p in (src / "vvc-ai").iterdir()) == ["qp27", "qp37"]
    for qp in (27, 37):
        names = sorted(p.name for p in (src / "vvc-ai" / f"qp{qp}").iterdir())
        assert names == ["bitstream.266", "manifest.json", "rec.yuv"]
        seq = load_manifest(src / "vvc-ai" / f"qp{qp}" / "manifest.json")
        assert (seq.width, seq.height, seq.frames, seq.qp) == (64, 64, 2, qp)
        assert seq.slice_qps == [qp, qp]


@pytest.mark.parametrize("case", ["missing", "not_video", "truncated", "unknown_size", "qp",
                                  "qp_word", "fake_ffmpeg", "fake_env", "not_ffmpeg",
                                  "no_binary", "big_endian"])
def test_encode_bad_input_is_one_line(tmp_path, monkeypatch, fake_ffmpeg, case):
    out = str(tmp_path / "out")
    args: list[str] = []
    frags: tuple[str, ...]
    if case == "missing":
        args, frags = [str(tmp_path / "nope.mp4")], ("nope.mp4", "no such file")
    elif case == "not_video":
        p = tmp_path / "notes.mp4"
        p.write_text("these are not frames\n" * 10)
        args, frags = [str(p)], ("notes.mp4", "FFmpeg cannot read it")
    elif case == "truncated":
        p = tmp_path / "cut_64x48_8bit.yuv"
        p.write_bytes(bytes(YuvFormat(64, 48).frame_bytes * 2 + 100))
        args, frags = [str(p)], ("cut_64x48_8bit.yuv", "not a whole number of frames", "4608")
    elif case == "big_endian":
        p = tmp_path / "be_64x48_10bit.yuv"
        samples = np.full(YuvFormat(64, 48, 10).frame_samples, 1000, ">u2")  # wrong byte order
        p.write_bytes(samples.tobytes())
        args, frags = [str(p)], ("be_64x48_10bit.yuv", "frame 0", "above 10-bit", "big-endian")
    elif case == "unknown_size":
        p = tmp_path / "foo.yuv"
        p.write_bytes(bytes(4608))
        args, frags = [str(p)], ("foo.yuv", "unknown picture size")
    elif case == "qp":
        proc = run_cli("encode", CARPHONE, "--qp", "22", "64", "-o", out)
        assert_one_line_error(proc, "QP 64 is outside 0..63")
        return
    elif case == "qp_word":
        proc = run_cli("encode", CARPHONE, "--qp", "high", "-o", out)
        assert_one_line_error(proc, "--qp takes integers")
        return
    elif case == "fake_ffmpeg":
        args, frags = [CARPHONE, "--ffmpeg", fake_ffmpeg], (
            fake_ffmpeg, "lacks encoder libvvenc, decoder vvc")
    elif case == "fake_env":
        monkeypatch.setenv("CODECNN_FFMPEG", fake_ffmpeg)
        args, frags = [CARPHONE], (fake_ffmpeg, "lacks encoder libvvenc")
    elif case == "not_ffmpeg":
        args, frags = [CARPHONE, "--ffmpeg", "/bin/echo"], ("/bin/echo", "not an FFmpeg")
    elif case == "no_binary":
        args, frags = [CARPHONE, "--ffmpeg", str(tmp_path / "ff")], ("no such FFmpeg binary",)
    proc = run_cli("encode", *args, "--qp", "32", "--frames", "1", "-o", out)
    assert_one_line_error(proc, *frags)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_encode_takes_a_sample_name(tmp_path, cli):
    """`codecnn encode bikes`-style inputs: a name that `codecnn samples` lists is enough."""
    proc = cli("encode", "carphone_pristine", "--qp", "37", "--frames", "1", "-o", tmp_path,
               check=True)
    assert "| carphone_pristine | 37 |" in proc.stdout
    assert (tmp_path / "carphone_pristine" / "vvc-ai" / "qp37" / "manifest.json").is_file()
    missing = cli("encode", "no_such_sample", "--qp", "37", "-o", tmp_path)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    assert "codecnn samples" in missing.stderr
