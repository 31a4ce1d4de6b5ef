"""Bad input over every command, as a user meets it: each case must end in one line
`codecnn: error: …` naming the file (or option) at fault, a non-zero exit, no traceback, and
nothing left under a final name (no output created or changed, no temporary file left).

One table, one test: a new command or a new failure mode is one more row.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

# A path no user can write under: /proc refuses new entries even to root.
UNWRITABLE = "/proc/codecnn-test/out"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real inputs to spoil: a coded 64×64 clip, its shard, a 2-step checkpoint, YUV pairs."""
    root = tmp_path_factory.mktemp("bad_inputs")
    run_cli("encode", "carphone_pristine", "--qp", "37", "--frames", "2", "--crop", "64x64",
            "--preset", "faster", "-o", root / "coded", check=True)
    manifest = root / "coded" / "carphone_pristine" / "vvc-ai" / "qp37" / "manifest.json"
    run_cli("extract", "--manifest", manifest, "-o", root / "shards", check=True)
    run_cli("train", "rdn", "--data", root / "shards", "--val", root / "shards", "--features",
            "8", "--blocks", "1", "--layers", "2", "--growth", "4", "--steps", "2",
            "--batch-size", "2", "--workers", "0", "-o", root / "run", check=True)
    (root / "notes.txt").write_text("".join(f"my notes, line {i}\n" for i in range(30)))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    from PIL import Image

    Image.fromarray(rgba, "RGBA").save(root / "logo.png")
    rng = np.random.default_rng(0)
    frame8 = rng.integers(0, 256, 64 * 64 * 3 // 2 * 2, dtype=np.uint8)
    (root / "a_64x64_8bit.yuv").write_bytes(frame8.tobytes())
    (root / "b_64x64_8bit.yuv").write_bytes(frame8.tobytes())
    (root / "c_32x32_8bit.yuv").write_bytes(frame8[: 32 * 32 * 3].tobytes())
    (root / "cut_64x64_8bit.yuv").write_bytes(frame8[:1000].tobytes())
    (root / "empty_64x64_8bit.yuv").write_bytes(b"")
    (root / "foo.yuv").write_bytes(frame8.tobytes())
    rec10 = np.full(64 * 64 * 3 // 2, 512, "<u2")
    (root / "r_64x64_10bit.yuv").write_bytes(rec10.tobytes())
    (root / "o_64x64_10bit.yuv").write_bytes(rec10.tobytes())
    (root / "not.h5").write_text("not an HDF5 file\n")
    import h5py

    with h5py.File(root / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    ckpt = (root / "run" / "last.pt").read_bytes()
    (root / "cut.pt").write_bytes(ckpt[: len(ckpt) // 3])
    m = json.loads(manifest.read_text())
    bad = manifest.parent
    for name, change in {"v99": {"manifest_version": 99},
                         "norec": {"reconstruction": "gone.yuv"}}.items():
        d = bad.parent / f"qp_{name}"
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({**m, **change}))
        for f in ("rec.yuv", "bitstream.266"):
            if name != "norec":
                shutil.copy(bad / f, d / f)
    (root / "truncated.json").write_text(manifest.read_text()[:200])
    trace = ["BlockStat: POC 0 @(0,0) [64x64] QP=37", "BlockStat: POC 0 @(16,16) [16xZZ] QP=2?7"]
    (root / "malformed.txt").write_text("\n".join(trace) + "\n")
    past = ["BlockStat: POC 0 @(0,0) [32x64] QP=37", "BlockStat: POC 0 @(32,0) [64x64] QP=37"]
    (root / "past.txt").write_text("\n".join(past) + "\n")
    (root / "exists.yuv").write_bytes(b"keep me")
    (root / "exists.h5").write_bytes(b"keep me")
    (root / "analysis").mkdir()
    (root / "analysis" / "correlation.json").write_text("{}")
    return root


def _cases():
    """(id, args, fragments the error must name, outputs that must not appear)."""
    rec, orig = "r_64x64_10bit.yuv", "o_64x64_10bit.yuv"
    coded = "coded/carphone_pristine/vvc-ai"
    model = ("--model", "run/last.pt")
    small = ("--features", "8", "--blocks", "1", "--layers", "2", "--growth", "4",
             "--steps", "2", "--batch-size", "2", "--workers", "0")
    return [
        # encode
        ("encode-missing", ["encode", "nope.mp4", "--qp", "37", "-o", "E"], ["nope.mp4"], ["E"]),
        ("encode-directory", ["encode", "shards", "--qp", "37", "-o", "E"],
         ["shards", "directory"], ["E"]),
        ("encode-text", ["encode", "notes.txt", "--qp", "37", "-o", "E"],
         ["notes.txt", "is text"], ["E"]),
        ("encode-alpha", ["encode", "logo.png", "--qp", "37", "-o", "E"],
         ["logo.png", "alpha", "--alpha"], ["E"]),
        ("encode-truncated", ["encode", "cut_64x64_8bit.yuv", "--qp", "37", "-o", "E"],
         ["cut_64x64_8bit.yuv", "whole number of frames"], ["E"]),
        ("encode-empty", ["encode", "empty_64x64_8bit.yuv", "--qp", "37", "-o", "E"],
         ["empty_64x64_8bit.yuv"], ["E"]),
        ("encode-unknown-size", ["encode", "foo.yuv", "--qp", "37", "-o", "E"],
         ["foo.yuv", "size"], ["E"]),
        ("encode-qp", ["encode", "a_64x64_8bit.yuv", "--qp", "64", "-o", "E"], ["QP 64"], ["E"]),
        ("encode-unwritable", ["encode", "a_64x64_8bit.yuv", "--qp", "37", "-o", UNWRITABLE],
         ["/proc/codecnn-test"], []),
        ("encode-exists", ["encode", "carphone_pristine", "--qp", "37", "--frames", "2",
                           "--crop", "64x64", "-o", "coded"], ["manifest.json", "--overwrite"],
         []),
        # extract
        ("extract-no-manifest", ["extract", "--manifest", "nope.json", "-o", "X"],
         ["nope.json"], ["X"]),
        ("extract-truncated-manifest", ["extract", "--manifest", "truncated.json", "-o", "X"],
         ["truncated.json", "JSON"], ["X"]),
        ("extract-manifest-v99", ["extract", "--manifest", f"{coded}/qp_v99/manifest.json",
                                  "-o", "X"], ["qp_v99/manifest.json", "manifest_version 99"],
         ["X"]),
        ("extract-manifest-no-rec", ["extract", "--manifest",
                                     f"{coded}/qp_norec/manifest.json", "-o", "X"],
         ["qp_norec/manifest.json", "gone.yuv"], ["X"]),
        ("extract-8bit-as-10", ["extract", "--yuv", "a_64x64_8bit.yuv", "--orig",
                                "b_64x64_8bit.yuv", "--size", "64x64", "--bit-depth", "10",
                                "--qp", "37", "-o", "x.h5"],
         ["a_64x64_8bit.yuv", "above 10-bit"], ["x.h5"]),
        ("extract-size-mismatch", ["extract", "--yuv", "a_64x64_8bit.yuv", "--orig",
                                   "c_32x32_8bit.yuv", "--qp", "37", "-o", "x.h5"],
         ["c_32x32_8bit.yuv"], ["x.h5"]),
        ("extract-exists", ["extract", "--yuv", rec, "--orig", orig, "--qp", "37", "-o",
                            "exists.h5"], ["exists.h5", "--overwrite"], []),
        ("extract-malformed-trace", ["extract", "--yuv", rec, "--orig", orig, "--qp-map",
                                     "malformed.txt", "-o", "x.h5"],
         ["malformed.txt:2", "malformed BlockStat"], ["x.h5"]),
        ("extract-cu-past-picture", ["extract", "--yuv", rec, "--orig", orig, "--qp-map",
                                     "past.txt", "-o", "x.h5"],
         ["past.txt", "reaches outside"], ["x.h5"]),
        ("extract-unwritable", ["extract", "--yuv", rec, "--orig", orig, "--qp", "37", "-o",
                                UNWRITABLE + ".h5"], ["/proc/codecnn-test"], []),
        ("extract-qp-and-map", ["extract", "--yuv", rec, "--orig", orig, "-o", "x.h5"],
         ["--qp"], ["x.h5"]),
        # dataset info
        ("dataset-missing", ["dataset", "info", "nope.h5"], ["nope.h5"], []),
        ("dataset-not-hdf5", ["dataset", "info", "not.h5"], ["not.h5", "HDF5"], []),
        ("dataset-not-shard", ["dataset", "info", "other.h5"], ["other.h5", "not a codecnn"],
         []),
        # analyze
        ("satd-no-input", ["analyze", "satd", "-o", "A"], ["--data"], ["A"]),
        ("correlation-not-shard", ["analyze", "correlation", "--data", "not.h5", "-o", "A"],
         ["not.h5"], ["A"]),
        ("correlation-exists", ["analyze", "correlation", "--data", "shards", "-o",
                                "analysis"], ["correlation.json", "--overwrite"], []),
        ("weights-no-depth", ["analyze", "weights", "--data", "shards", "-o", "A"],
         ["depth"], ["A"]),
        ("correlation-unwritable", ["analyze", "correlation", "--data", "shards", "-o",
                                    UNWRITABLE], ["/proc/codecnn-test"], []),
        # filter
        ("filter-no-model", ["filter", "--model", "nope.pt", "--yuv", rec, "--qp", "37",
                             "-o", "f.yuv"], ["nope.pt"], ["f.yuv"]),
        ("filter-truncated-model", ["filter", "--model", "cut.pt", "--yuv", rec, "--qp", "37",
                                    "-o", "f.yuv"], ["cut.pt", "not a readable checkpoint"],
         ["f.yuv"]),
        ("filter-text-model", ["filter", "--model", "notes.txt", "--yuv", rec, "--qp", "37",
                               "-o", "f.yuv"], ["notes.txt"], ["f.yuv"]),
        ("filter-no-yuv", ["filter", *model, "--yuv", "nope.yuv", "--qp", "37", "-o",
                           "f.yuv"], ["nope.yuv"], ["f.yuv"]),
        ("filter-exists", ["filter", *model, "--yuv", rec, "--qp", "37", "-o", "exists.yuv"],
         ["exists.yuv", "--overwrite"], []),
        ("filter-unwritable", ["filter", *model, "--yuv", rec, "--qp", "37", "-o",
                               UNWRITABLE + ".yuv"], ["/proc/codecnn-test"], []),
        # eval
        ("eval-unknown-zoo", ["eval", "--model", "zoo:nope", "--data", "shards", "-o", "R"],
         ["zoo:nope"], ["R"]),
        ("eval-manifest-v99", ["eval", *model, "--manifest", f"{coded}/qp_v99/manifest.json",
                               "-o", "R"], ["manifest_version 99"], ["R"]),
        ("eval-not-shard", ["eval", *model, "--data", "not.h5", "-o", "R"], ["not.h5"], ["R"]),
        ("eval-unwritable", ["eval", *model, "--data", "shards", "-o", UNWRITABLE],
         ["/proc/codecnn-test"], []),
        # train and summary
        ("train-no-data", ["train", "rdn", "--data", "nope", *small, "-o", "T"], ["nope"],
         ["T"]),
        ("train-unwritable", ["train", "rdn", "--data", "shards", "--val", "shards", *small,
                              "-o", UNWRITABLE], ["/proc/codecnn-test"], []),
        ("train-init-from-missing", ["train", "rdn", "--data", "shards", "--init-from",
                                     "nope.pt", *small, "-o", "T"], ["nope.pt"], ["T"]),
        ("train-resume-nothing", ["train", "rdn", "--resume", "shards"], ["shards"], []),
        ("train-steps-zero", ["train", "rdn", "--data", "shards", "--steps", "0", "-o", "T"],
         ["--steps"], ["T"]),
        ("summary-unknown-zoo", ["summary", "zoo:nope"], ["zoo:nope"], []),
        # samples, zoo, corpus, demo
        ("samples-unknown", ["samples", "--export", "nope", "-o", "S"], ["nope"], ["S"]),
        ("samples-unwritable", ["samples", "--export", "carphone_pristine", "--frames", "1",
                                "-o", UNWRITABLE], ["/proc/codecnn-test"], []),
        ("zoo-card-unknown", ["zoo", "card", "nope"], ["nope"], []),
        ("corpus-unknown-source", ["corpus", "--only", "nope", "-o", "C"], ["nope"], ["C"]),
        ("demo-no-cuda", ["demo", "--device", "cuda", "-o", "D"], ["cuda"], ["D"]),
    ]


CASES = _cases()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def test_the_table_covers_every_command():
    commands = {c[1][0] if c[1][0] not in ("analyze", "dataset", "zoo")
                else " ".join(c[1][:2]) for c in CASES}
    assert len(CASES) >= 40
    assert commands >= {"encode", "extract", "dataset info", "analyze satd",
                        "analyze correlation", "analyze weights", "filter", "eval", "train",
                        "summary", "samples", "zoo card", "corpus", "demo"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(world, case):
    _, args, fragments, must_not_exist = case
    before = _snapshot(world)
    proc = run_cli(*args, cwd=world, timeout=300)
    assert_one_line_error(proc, *fragments)
    assert proc.stderr.startswith("codecnn") and ": error: " in proc.stderr
    for out in must_not_exist:
        assert not (world / out).exists(), f"{out} was created"
    after = _snapshot(world)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))
    assert not [p for p in world.rglob("*") if p.name.endswith(".tmp")]
    assert not os.path.exists(UNWRITABLE)


def _dead_pid() -> int:
    """A pid no process has now (the highest pids are free on a test machine)."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_the_next_run_removes_what_an_interrupted_one_left(world, tmp_path):
    dead = _dead_pid()
    coded = tmp_path / "coded"
    shutil.copytree(world / "coded", coded)
    qp_dir = coded / "carphone_pristine" / "vvc-ai" / "qp37"
    leftovers = [qp_dir / f".bitstream.266.{dead}.tmp",
                 coded / "carphone_pristine" / f".original.yuv.{dead}.tmp"]
    alive = qp_dir / f".rec.yuv.{os.getpid()}.tmp"  # a writer that still runs: kept
    for p in [*leftovers, alive]:
        p.write_bytes(b"half a file")
    run_cli("encode", "carphone_pristine", "--qp", "37", "--frames", "2", "--crop", "64x64",
            "--preset", "faster", "--overwrite", "-o", coded, check=True)
    assert not any(p.exists() for p in leftovers) and alive.exists()
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    stale = run / f".last.pt.{dead}.tmp"
    stale.write_bytes(b"half a checkpoint")
    run_cli("train", "rdn", "--resume", run, "--steps", "3", check=True)
    assert not stale.exists()


def test_a_coded_folder_moves_whole(world, tmp_path):
    """Manifests hold paths relative to themselves (the original one level up), so a
    coded folder copied elsewhere, its old place gone, still extracts."""
    moved = tmp_path / "elsewhere"
    shutil.copytree(world / "coded" / "carphone_pristine", moved / "carphone_pristine")
    manifest = moved / "carphone_pristine" / "vvc-ai" / "qp37" / "manifest.json"
    m = json.loads(manifest.read_text())
    assert m["original"] == "../../original.yuv" and m["reconstruction"] == "rec.yuv"
    proc = run_cli("extract", "--manifest", manifest, "-o", tmp_path / "shards")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "shards" / "carphone_pristine_qp37.h5").is_file()
