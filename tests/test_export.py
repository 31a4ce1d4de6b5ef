"""`codecnn export`: ONNX equal to PyTorch on real CTUs, the exact int16 model, int8, and
`filter`/`eval` running the exported files. Shards are really coded with VVenC; the models
are trained a few steps through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, assert_one_line_error, run_cli

from codecnn.errors import DataError
from codecnn.evaluate import evaluate_data, filter_yuv
from codecnn.evaluate.model_io import load_filter
from codecnn.export import int16
from codecnn.export.calib import read_patches
from codecnn.export.deploy import export_model
from codecnn.export.runtime import OnnxFilter, read_onnx_meta
from codecnn.export.to_onnx import TOLERANCE, normalise
from codecnn.models import load_model
from tests.train_data import make_shards

TINY = ("--features", "8", "--blocks", "1", "--layers", "2", "--growth", "4",
        "--batch-size", "4", "--val-every", "4", "--workers", "0", "--lr", "3e-3",
        "--steps", "4")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Shards with a depth plane; a model on rec+qp+depth with down/up-sampling (updown) and
    one on rec alone, each trained 4 steps (so the tail is no longer zero)."""
    root = tmp_path_factory.mktemp("export")
    make_shards(root / "shards", sequences=("astronaut",), qps=(37,), width=256, height=128,
                depth=True)
    # The two trainings run side by side (two processes): the fixture's time is halved.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]).rstrip(os.pathsep)}
    runs = [("rdn-cpu", "rec,qp,depth", "depth"), ("rdn-s", "rec", "rec")]
    procs = [subprocess.Popen([sys.executable, "-m", "codecnn", "train", "rdn", "--data",
                               str(root / "shards"), "--preset", preset, "--planes", planes,
                               *TINY, "-o", str(root / name)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for preset, planes, name in runs]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    return root


@pytest.fixture(scope="module")
def exported(data):
    """The depth model exported with int8 and int16 (in-process, as the CLI calls it)."""
    out = data / "deploy" / "depth.onnx"
    out.parent.mkdir()
    done = export_model(data / "depth" / "last.pt", out, [data / "shards"], int8=True,
                        int16=True, calib_patches=8, progress=False)
    return done


def test_onnx_equals_pytorch_on_real_ctus_and_at_any_size(data, exported):
    assert exported["check"]["patches"] == 4  # 2 frames × 2 CTUs: every patch
    assert exported["check"]["max_abs_diff"] <= TOLERANCE
    meta = read_onnx_meta(exported["files"]["onnx"])
    assert meta["planes"] == ["rec", "qp", "depth"] and meta["border"] == 2
    assert meta["normalisation"]["qp"] == 63.0 and meta["bit_depth"] == 10
    # Dynamic height and width: a 68×100 crop of a real patch (updown: 64×96 out).
    model, _ = load_model(data / "depth" / "last.pt")
    raw, bd = read_patches([data / "shards"], ("rec", "qp", "depth"), 2, 2)
    x = torch.from_numpy(normalise(raw[:, :, :68, :100], ("rec", "qp", "depth"), bd))
    with torch.inference_mode():
        want = model(x)
    got = OnnxFilter(exported["files"]["onnx"])(x)
    assert got.shape == (2, 1, 64, 96) and want.abs().max() > 0
    assert (got - want).abs().max().item() <= TOLERANCE


def test_int16_is_deterministic_and_matches_its_integer_reference(data, exported):
    prog, meta = int16.load_program(exported["files"]["int16"])
    assert meta["precision"] == "int16" and prog.bit_depth == 10
    raw, _ = read_patches([data / "shards"], prog.planes, prog.border, 2)
    crop = raw[:, :, 30:70, 10:46]  # 40×36 → 36×32: the numpy reference is slow
    a = int16.run_exact(prog, crop)
    assert a.dtype == np.int16 and a.shape == (2, 1, 36, 32)
    assert np.array_equal(a, int16.run_exact(prog, crop))
    assert np.array_equal(a, int16.run_reference(prog, crop))
    # Every weight is int16 and every shift a whole power of two.
    convs = [op for op in prog.ops if op["op"] == "conv"]
    assert all(op["w"].dtype == np.int16 and op["b"].dtype == np.int64 for op in convs)
    # The integer residual is the float one to within a sample.
    model, _ = load_model(data / "depth" / "last.pt")
    with torch.inference_mode():
        want = model(torch.from_numpy(normalise(crop, prog.planes, 10))).numpy() * prog.peak
    assert np.abs(int16.residual_samples(prog, a) - want).max() <= 1.0
    assert exported["int16"]["accumulator_bits"] <= 63
    # A saturating 32-bit accumulator, as SIMD int16 kernels have: the same on both engines.
    with torch.inference_mode():
        narrow = int16.quantise_rdn(model, raw, 10, acc_bits=32)
    assert narrow.stats["accumulator_bits"] <= 32
    b = int16.run_exact(narrow, crop)
    assert np.array_equal(b, int16.run_reference(narrow, crop))


def test_a_model_without_a_qp_plane_exports(data, tmp_path):
    out = tmp_path / "rec.onnx"
    done = export_model(data / "rec" / "last.pt", out, [data / "shards"], int16=True,
                        calib_patches=4, progress=False)
    assert done["check"]["max_abs_diff"] <= TOLERANCE
    assert read_onnx_meta(out)["planes"] == ["rec"]
    prog, _ = int16.load_program(done["files"]["int16"])
    assert prog.planes == ("rec",) and not any(op["op"] == "unshuffle" for op in prog.ops)


def test_eval_scores_the_exported_files_like_the_checkpoint(data, exported, tmp_path):
    reps = {name: evaluate_data(path, [data / "shards"], tmp_path / name, progress=False)
            for name, path in [("float", data / "depth" / "last.pt"),
                               ("onnx", exported["files"]["onnx"]),
                               ("int16", exported["files"]["int16"]),
                               ("int8", exported["files"]["int8"])]}
    gain = {k: r["summary"]["per_qp"][0]["gain"] for k, r in reps.items()}
    assert gain["onnx"] == pytest.approx(gain["float"], abs=1e-6)
    assert gain["int16"] == pytest.approx(gain["float"], abs=5e-3)
    assert np.isfinite(gain["int8"])
    assert reps["int8"]["model"]["precision"] == "int8"
    assert (tmp_path / "onnx" / "report.md").is_file()


def test_filter_with_an_onnx_file_equals_the_checkpoint(data, tmp_path):
    out = tmp_path / "rec.onnx"
    export_model(data / "rec" / "last.pt", out, [data / "shards"], calib_patches=4,
                 progress=False)
    yuv = data / "shards" / "yuv" / "astronaut_qp37_rec.yuv"
    for model, name in ((out, "a.yuv"), (data / "rec" / "last.pt", "b.yuv")):
        filter_yuv(model, yuv, tmp_path / name, size=(256, 128), bit_depth=10, device="cpu",
                   progress=False)
    a = np.fromfile(tmp_path / "a.yuv", "<u2")
    b = np.fromfile(tmp_path / "b.yuv", "<u2")
    assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
    assert (a != np.fromfile(yuv, "<u2")).any()  # the filter changed something


def test_export_cli_measures_every_version(data, tmp_path):
    proc = run_cli("export", "--model", data / "rec" / "last.pt", "-o", tmp_path / "m.onnx",
                   "--calib", data / "shards", "--calib-patches", "4", "--int16",
                   "--measure", data / "shards", "--report", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    assert "max |diff|" in proc.stdout and "int16" in proc.stdout
    summary = json.loads((tmp_path / "rep" / "export.json").read_text())
    assert summary["variants"] == ["float", "onnx", "int16"]
    row = summary["per_qp"][0]
    assert row["qp"] == 37 and abs(row["onnx"]["loss"]) < 1e-6
    assert (tmp_path / "rep" / "int16" / "report.json").is_file()
    assert (tmp_path / "rep" / "export.md").read_text().count("| 37 |") == 1


def test_user_errors_are_one_line_naming_the_file(data, tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model\n")
    proc = run_cli("eval", "--model", fake, "--data", data / "shards", "-o", tmp_path / "r")
    assert_one_line_error(proc, str(fake), "not an ONNX model")
    with pytest.raises(DataError, match="no such"):
        load_filter(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="bad.npz: not a codecnn int16 model"):
        load_filter(bad)
    with pytest.raises(DataError, match="must end in .onnx"):
        export_model(data / "rec" / "last.pt", tmp_path / "m.pt", [data / "shards"],
                     progress=False)
    (tmp_path / "m.onnx").write_text("x")
    with pytest.raises(DataError, match="already exists"):
        export_model(data / "rec" / "last.pt", tmp_path / "m.onnx", [data / "shards"],
                     progress=False)


def test_int8_ablation_options(data, exported, tmp_path):
    """The options tools/int8_ablation.py uses: a convolution kept in float reads a float
    tensor (no DequantizeLinear before it), and 16-bit activations stay closer to the float
    model than 8-bit ones on real CTUs."""
    import onnx

    from codecnn.export.int8 import conv_nodes, quantise_int8

    fp32 = exported["files"]["onnx"]
    raw, bd = read_patches([data / "shards"], ("rec", "qp", "depth"), 2, 4)
    x = normalise(raw, ("rec", "qp", "depth"), bd)
    head = conv_nodes(fp32)[0]
    quantise_int8(fp32, tmp_path / "head.onnx", x, keep_float=(head,))
    graph = onnx.load(str(tmp_path / "head.onnx")).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    conv = next(n for n in graph.node if n.name == head)
    assert producers.get(conv.input[0]) != "DequantizeLinear"
    quantise_int8(fp32, tmp_path / "a16.onnx", x, activation_bits=16)
    model, _ = load_model(data / "depth" / "last.pt")
    with torch.inference_mode():
        want = model(torch.from_numpy(x))
    err = {name: (OnnxFilter(path)(torch.from_numpy(x)) - want).abs().max().item()
           for name, path in [("a8", exported["files"]["int8"]),
                              ("a16", tmp_path / "a16.onnx")]}
    assert err["a16"] < err["a8"] / 2
