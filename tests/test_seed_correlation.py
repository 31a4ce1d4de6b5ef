"""`codecnn reproduce seed-correlation`: the notes' QP/depth table measured again, beside
theirs. Its rows from one CTU table (checked against scipy and the closed form), the whole
command on a tiny real corpus (HEVC depth when no VTM decoder is configured, VVC depth
through VTM where $CODECNN_VTM_DECODER names one), and a VVC corpus given VTM depth later."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_cli
from scipy import stats

from codecnn.analysis.ctu_data import CtuTable
from codecnn.analysis.notes import NOTES, seed_correlation, write_seed_correlation
from codecnn.codec.vtm import ENV

DECODER = os.environ.get(ENV)
ONLY = "astronaut,chelsea"  # one training still, one held-out still


def run_cli_env(env: dict, *args) -> subprocess.CompletedProcess:
    """`python -m codecnn ARGS` in exactly the environment `env` (e.g. with no VTM)."""
    env = dict(env, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "codecnn", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=900)


def _table(seed: int = 0) -> CtuTable:
    """CTUs whose MSE grows with QP and depth (plus noise): 4 QPs × 50 CTUs."""
    rng = np.random.default_rng(seed)
    qp = np.repeat([22, 27, 32, 37], 50)
    depth = rng.uniform(0, 4, qp.size)
    mse = 0.5 * qp + 3.0 * depth + rng.normal(0, 4, qp.size)
    return CtuTable(mse=mse, slice_qp=qp, nominal_qp=qp, mean_depth=depth,
                    sequence=np.array(["s"] * qp.size), bit_depth=10, shards=("x.h5",),
                    depth_missing_in=())


def test_rows_are_the_notes_rows_measured_on_the_table(tmp_path):
    t = _table()
    r = seed_correlation(t, init_points=4, n_iter=8)
    rows = {row["key"]: row for row in r["rows"]}
    assert list(rows)[:6] == ["qp_mse", "depth_mse_all", "depth_mse_qp22", "depth_mse_qp27",
                              "depth_mse_qp32", "depth_mse_qp37"]
    assert rows["qp_mse"]["ours"] == pytest.approx(stats.pearsonr(t.slice_qp, t.mse)[0])
    m = t.nominal_qp == 32
    assert rows["depth_mse_qp32"]["ours"] == pytest.approx(
        stats.pearsonr(t.mean_depth[m], t.mse[m])[0])
    assert rows["depth_mse_qp32"]["n"] == 50
    for key, note in NOTES.items():
        assert rows[key]["notes"] == note
    assert rows["bo_b1_r"]["ours"] <= rows["closed_form_r"]["ours"] + 1e-12
    assert rows["bo_free_r"]["ours"] <= rows["closed_form_r"]["ours"] + 1e-12
    out = write_seed_correlation(r, tmp_path, "synthetic: a test table")
    md = (tmp_path / "seed_correlation.md").read_text()
    assert "Depth: synthetic: a test table." in md and "the notes" in md
    assert "0.5500" in md and "0.3290" in md  # the notes' QP–MSE and their b = 1 weight
    data = json.loads((tmp_path / "seed_correlation.json").read_text())
    assert data["depth_source"] == "synthetic: a test table" and len(data["rows"]) == 12
    assert (tmp_path / "seed_correlation.png").stat().st_size > 10_000
    assert out["files"][0].endswith("seed_correlation.md")


def test_the_command_on_a_tiny_hevc_corpus_says_its_depth_is_hevc(tmp_path):
    env_less = {k: v for k, v in os.environ.items() if k != ENV}
    proc = run_cli_env(env_less, "reproduce", "seed-correlation", "--corpus", tmp_path / "c",
                       "-o", tmp_path / "r", "--only", ONLY, "--no-wallpapers")
    assert proc.returncode == 0, proc.stderr
    assert "depth from HEVC, libde265 (no VTM decoder configured" in proc.stdout
    md = (tmp_path / "r" / "seed_correlation.md").read_text()
    assert "Depth: HEVC" in md and "Pearson depth–MSE at QP 37" in md
    data = json.loads((tmp_path / "r" / "seed_correlation.json").read_text())
    assert data["correlation"]["n_ctus"] > 40 and data["corpus"].endswith("hevc-ai")


needs_vtm = pytest.mark.skipif(
    not DECODER, reason=f"no VTM decoder configured: set ${ENV} to a DecoderApp built with "
    "tracing (tools/build_vtm.sh VTM_SOURCE_DIR) to run the VVC depth path")


@needs_vtm
def test_a_vvc_corpus_coded_without_vtm_gets_its_depth_later(tmp_path):
    """corpus without, then with a VTM decoder: every coded sequence gets VTM's depth (added
    to the existing stream, or coded again without IBC where VTM's tracing stops at IBC), and
    the shards are cut again with depth."""
    from codecnn.io.shard import open_shard

    env_less = {k: v for k, v in os.environ.items() if k != ENV}
    c = tmp_path / "c"
    run = ("corpus", "-o", c, "--only", "coins", "--no-wallpapers", "--qp", "32,37")
    assert run_cli_env(env_less, *run).returncode == 0
    shard = c / "vvc-ai" / "shards" / "train" / "coins_qp32.h5"
    with open_shard(shard) as f:
        assert "depth" not in f
    proc = run_cli(*run, "--vtm-decoder", DECODER)
    assert proc.returncode == 0, proc.stderr
    for qp in (32, 37):
        m = json.loads((c / "vvc-ai" / "coded" / "coins" / "vvc-ai" / f"qp{qp}" /
                        "manifest.json").read_text())
        assert m["depth_map"] == "depth.raw" and m["encoder_settings"]["depth_statistic"]
    with open_shard(shard) as f:
        assert "depth" in f and f.attrs["has_depth"]


@needs_vtm
def test_the_command_with_vtm_measures_vvc_depth(tmp_path):
    proc = run_cli("reproduce", "seed-correlation", "--corpus", tmp_path / "c", "-o",
                   tmp_path / "r", "--only", ONLY, "--no-wallpapers", "--vtm-decoder", DECODER)
    assert proc.returncode == 0, proc.stderr
    assert "depth from VVC, VTM DecoderApp block statistics" in proc.stdout
    data = json.loads((tmp_path / "r" / "seed_correlation.json").read_text())
    assert data["corpus"].endswith("vvc-ai") and data["correlation"]["has_depth"]
