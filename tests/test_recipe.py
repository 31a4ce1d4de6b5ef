"""The training recipe: balanced draws, crops and dihedral transforms, per-QP loss weights,
the fp32 head under bf16, and exact resume of all of it through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli

from codecnn.datasets import ShardDataset
from codecnn.datasets.shard_dataset import _dihedral
from codecnn.models import build_model
from codecnn.train import TrainConfig
from codecnn.train.loop import qp_loss_weights
from codecnn.train.sampling import BalancedDraws, BalancedSampler
from tests.train_data import make_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two sequences at QP 22 and 37, 2 frames of 256×136 (the bottom CTUs are cut)."""
    out = tmp_path_factory.mktemp("recipe_shards")
    make_shards(out, sequences=("astronaut", "coffee"), qps=(22, 37), width=256, height=136)
    return out


def _table(**kw):
    # Source a: 1000 patches at QPs 22/37 (900 at 37); b: 10 at 22; c: 100 at 22/27/32/37.
    seqs = np.array(["a"] * 1000 + ["b"] * 10 + ["c"] * 100)
    qps = np.array([22] * 100 + [37] * 900 + [22] * 10 + [22, 27, 32, 37] * 25)
    valid = np.full((len(seqs), 2), 128)
    valid[5] = (40, 128)  # a CTU cut by the bottom picture edge
    return seqs, qps, BalancedDraws(seqs, qps, valid, **kw)


def test_draws_follow_the_source_weights_and_balance_qps():
    seqs, qps, table = _table(weights={"a": 1, "b": 2, "c": 1}, crop=48)
    draws = [d for step in range(500) for d in table.batch(seed=3, step=step, size=40)]
    n = len(draws)
    counts = table.per_source(draws, seqs)
    # 20,000 draws: a share's standard error is at most 0.0035; 0.015 is over 4 of them.
    for name, share in {"a": 0.25, "b": 0.5, "c": 0.25}.items():
        assert abs(counts[name] / n - share) < 0.015, (name, counts)
    a_qps = np.array([qps[d.index] for d in draws if seqs[d.index] == "a"])
    assert abs(np.mean(a_qps == 22) - 0.5) < 0.03  # 10 % of a's patches, half of its draws
    c_qps = np.array([qps[d.index] for d in draws if seqs[d.index] == "c"])
    assert set(np.unique(c_qps)) == {22, 27, 32, 37}
    assert all(abs(np.mean(c_qps == q) - 0.25) < 0.04 for q in (22, 27, 32, 37))
    assert {d.k for d in draws} == set(range(8))
    assert all(0 <= d.y <= 80 and 0 <= d.x <= 80 and d.size == 48 for d in draws)
    assert all(d.y == 0 for d in draws if d.index == 5)  # 40 rows valid: window at the top


def test_draws_are_a_pure_function_and_ranks_split_the_global_batch():
    _, _, table = _table()
    assert table.batch(7, 11, 16) == table.batch(7, 11, 16)
    assert table.batch(7, 11, 16) != table.batch(7, 12, 16)
    both = [BalancedSampler(table, batch=4, seed=7, rank=r, world=2, start_step=11)
            for r in (0, 1)]
    got = [[next(it) for _ in range(4)] for it in map(iter, both)]
    assert got[0] + got[1] == table.batch(7, 11, 8)
    resumed = iter(BalancedSampler(table, batch=4, seed=7, start_step=2))
    straight = iter(BalancedSampler(table, batch=4, seed=7, start_step=0))
    for _ in range(8):
        next(straight)
    assert [next(resumed) for _ in range(8)] == [next(straight) for _ in range(8)]


def test_unknown_or_all_zero_weights_are_errors():
    seqs, qps, _ = _table()
    with pytest.raises(ValueError, match="'zz'"):
        BalancedDraws(seqs, qps, np.full((len(seqs), 2), 128), weights={"zz": 1})
    with pytest.raises(ValueError, match="weight 0"):
        BalancedDraws(seqs, qps, np.full((len(seqs), 2), 128), weights=dict.fromkeys("abc", 0))


def test_a_draw_is_the_window_of_the_patch_then_its_symmetry(shards):
    ds = ShardDataset(shards)
    cut = int(np.nonzero(ds.meta["valid_h"] < 128)[0][0])  # an edge CTU (8 rows valid)
    whole = ds[cut]
    for k in (0, 3, 6):
        item = ds[(cut, k, 4, 20, 32)]
        want_in = _dihedral(whole["input"].numpy()[:, 4:40, 20:56], k)
        want_t = _dihedral(whole["target"].numpy()[:, 4:36, 20:52], k)
        np.testing.assert_array_equal(item["input"].numpy(), want_in)
        np.testing.assert_array_equal(item["target"].numpy(), want_t)
        valid = _dihedral(whole["valid"].numpy()[:, 4:36, 20:52], k)
        np.testing.assert_array_equal(item["valid"].numpy(), valid)
        assert item["valid"].sum() == 32 * (int(ds.meta["valid_h"][cut]) - 4)


def test_qp_weights_equalise_the_error_energy(shards):
    ds = ShardDataset(shards)
    w = qp_loss_weights(ds)
    assert set(w) == {22, 37} and np.mean(list(w.values())) == pytest.approx(1.0)
    energy = {}
    for qp in (22, 37):
        idx = np.nonzero(ds.meta["nominal_qp"] == qp)[0]
        t = [ds[int(i)] for i in idx]
        energy[qp] = np.mean([float((x["target"] ** 2 * x["valid"]).sum() / x["valid"].sum())
                              for x in t])
    assert energy[22] < energy[37] / 3  # the premise: QP 22's error is much smaller
    # weight × energy is the same at both QPs (the sample is every patch here)
    assert w[22] * energy[22] == pytest.approx(w[37] * energy[37], rel=1e-4)
    half = qp_loss_weights(ds, power=0.5)  # --qp-weighting sqrt
    assert half[22] * energy[22] ** 0.5 == pytest.approx(half[37] * energy[37] ** 0.5, rel=1e-4)
    assert 1 < half[22] / half[37] < w[22] / w[37]


def test_head_runs_in_fp32_under_bf16_autocast():
    """bf16 would round a 10-bit sample of 512..1023 to steps of 4 codes at the first
    convolution; the head sees fp32 and the output is fp32."""
    torch.manual_seed(0)
    net = build_model("rdn-cpu", planes=("rec", "qp"))
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    seen = []
    net.head[0].register_forward_hook(lambda m, i, o: seen.append((i[0].dtype, o.dtype)))
    x = torch.full((1, 2, 36, 36), 0.5)
    x[:, 0] = 800 / 1023
    y = x.clone()
    y[:, 0] = 801 / 1023  # one code value apart: equal in bf16, not in fp32
    assert torch.equal(x.bfloat16(), y.bfloat16())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ox, oy = net(x), net(y)
    assert seen[0] == (torch.float32, torch.float32)
    assert ox.dtype == torch.float32
    assert not torch.equal(ox, oy)


def test_recipe_resumes_exactly_through_the_cli(shards, tmp_path):
    """Balanced draws, crops, dihedral transforms and QP weights: `--until` then `--resume`
    in new processes gives the weights of the uninterrupted run, bit for bit."""
    common = ["train", "rdn", "--data", shards, "--features", "8", "--blocks", "1",
              "--layers", "2", "--growth", "4", "--steps", "6", "--batch-size", "4",
              "--crop", "32", "--qp-weighting", "energy", "--val-every", "3", "--workers", "1",
              "--device", "cpu", "--seed", "5"]
    run_cli(*common, "-o", tmp_path / "straight", check=True)
    run_cli(*common, "--until", "3", "-o", tmp_path / "split", check=True)
    run_cli("train", "rdn", "--resume", tmp_path / "split", check=True)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    changed = run_cli("train", "rdn", "--resume", tmp_path / "split", "--steps", "9",
                      "--crop", "16")
    assert changed.returncode != 0 and "crop" in changed.stderr


def test_old_run_configs_keep_stream_sampling():
    cfg = TrainConfig.from_dict({"data": ["x.h5"], "steps": 5})
    assert cfg.sampling == "stream"
    assert TrainConfig(data=("x.h5",)).sampling == "balanced"
