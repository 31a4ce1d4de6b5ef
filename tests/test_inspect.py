"""`codecnn inspect`: activation grids, per-layer statistics and predicted vs true residual of
a (tiny, briefly trained) model, checked against the same numbers computed without hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli

from codecnn.datasets import ShardDataset
from codecnn.experiments.inspect import inspect_model
from codecnn.models import load_model, read_checkpoint
from codecnn.train import TrainConfig, train_model
from tests.train_data import make_shards

DEAD = 1  # the channel of blocks.0.convs.0 killed by a large negative bias


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Shards, and a model trained 2 steps whose first dense layer has one dead channel."""
    root = tmp_path_factory.mktemp("inspect")
    make_shards(root / "shards", sequences=("astronaut", "coffee"), qps=(37,), width=256,
                height=128)
    config = TrainConfig(data=(str(root / "shards"),), preset="rdn-s", steps=2, val_every=2,
                         batch_size=2, workers=0, lr=3e-3, crop=32,
                         model_overrides={"features": 6, "blocks": 2, "layers": 2,
                                          "growth": 4})
    train_model(config, root / "run", progress=False)
    ckpt = read_checkpoint(root / "run" / "last.pt")
    ckpt["model_state"]["blocks.0.convs.0.bias"][DEAD] = -100.0
    torch.save(ckpt, root / "dead.pt")
    return root


@pytest.fixture(scope="module")
def looked(data):
    out = data / "look"
    proc = run_cli("inspect", "--model", data / "dead.pt", "--data", data / "shards",
                   "--sample", "6", "--ctus", "3", "--maps", "4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads((out / "inspect.json").read_text())


def test_the_outputs_are_there(looked):
    out, rep = looked
    assert rep["layers_shown"] == ["head", "blocks.0.convs.0", "blocks.0", "blocks.1", "gff"]
    for name in rep["layers_shown"]:
        assert (out / f"activations_{name}.png").stat().st_size > 5_000
    assert (out / "residual.png").stat().st_size > 5_000
    assert len(rep["ctus_shown"]) == 3
    md = (out / "layers.md").read_text()
    assert "| blocks.0.convs.0 " in md and "dead ReLUs" in md


def test_statistics_match_a_computation_without_hooks(data, looked):
    _, rep = looked
    stats = {s["layer"]: s for s in rep["statistics"]}
    model, _ = load_model(data / "dead.pt")
    ds = ShardDataset(data / "shards", planes=model.config.planes)
    x = torch.stack([ds[m["index"]]["input"] for m in rep["sample"]["meta"]])
    with torch.no_grad():
        head = model.head(x)
        pre = model.blocks[0].convs[0](head)
    post = pre.clamp_min(0).double().numpy()
    by_hand_dead = [c for c in range(pre.shape[1]) if float(pre[:, c].max()) <= 0]
    s = stats["blocks.0.convs.0"]
    assert DEAD in by_hand_dead and s["dead_channels"] == by_hand_dead
    assert s["dead_fraction"] == len(by_hand_dead) / pre.shape[1]
    assert s["zero_fraction"] == pytest.approx(float((pre <= 0).double().mean()), rel=1e-12)
    assert s["mean"] == pytest.approx(post.mean(), rel=1e-9)
    assert s["std"] == pytest.approx(post.std(), rel=1e-9)
    h = head.double().numpy()
    assert stats["head"]["mean"] == pytest.approx(h.mean(), rel=1e-9)
    assert stats["head"]["std"] == pytest.approx(h.std(), rel=1e-9)
    assert stats["head"]["dead_fraction"] is None  # no ReLU after the head


def test_the_true_residual_is_the_shards_and_the_gain_is_the_models(data, looked):
    _, rep = looked
    model, _ = load_model(data / "dead.pt")
    ds = ShardDataset(data / "shards", planes=model.config.planes)
    sample = [m["index"] for m in rep["sample"]["meta"]]
    with torch.no_grad():  # one batch, as inspect runs it
        preds = model(torch.stack([ds[i]["input"] for i in sample]))
    for c in rep["ctus_shown"]:
        raw = ds.read_raw(c["index"])
        m = ds.meta[c["index"]]
        h, w = int(m["valid_h"]), int(m["valid_w"])
        rec = raw["rec"][2:2 + h, 2:2 + w].astype(np.float64)
        orig = raw["orig"][:h, :w].astype(np.float64)
        assert c["mse_rec"] == pytest.approx(((orig - rec) ** 2).mean(), rel=1e-12)
        pred = preds[sample.index(c["index"]), 0, :h, :w].double().numpy()
        filt = np.clip(np.round(rec + pred * ds.peak), 0, ds.peak)
        assert c["mse_filtered"] == pytest.approx(((orig - filt) ** 2).mean(), rel=1e-12)


def test_a_yuv_pair_gives_the_same_ctus_as_the_shards(data, tmp_path):
    yuv = data / "shards" / "yuv"
    rep = inspect_model(str(data / "dead.pt"), tmp_path / "y",
                        yuv=str(yuv / "astronaut_qp37_rec.yuv"), orig=str(yuv / "astronaut.yuv"),
                        size=(256, 128), bit_depth=10, qp=37, layers=["blocks.1"], ctus=2,
                        sample=4, progress=False)
    assert (tmp_path / "y" / "activations_blocks.1.png").is_file()
    ds = ShardDataset(data / "shards" / "astronaut_qp37.h5")
    for c in rep["ctus_shown"]:
        i = next(i for i, m in enumerate(ds.meta) if (int(m["poc"]), int(m["ctu_x"]),
                                                     int(m["ctu_y"])) == (c["poc"], c["x"], c["y"]))
        raw = ds.read_raw(i)
        err = raw["orig"].astype(np.float64) - raw["rec"][2:-2, 2:-2]
        assert c["mse_rec"] == pytest.approx((err ** 2).mean(), rel=1e-12)


def test_an_unknown_layer_is_one_line(data, tmp_path):
    proc = run_cli("inspect", "--model", data / "dead.pt", "--data", data / "shards",
                   "--layers", "blocks.9", "-o", tmp_path / "x")
    assert_one_line_error(proc, "blocks.9")
