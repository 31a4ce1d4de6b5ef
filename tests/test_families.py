"""Model families: one contract (shape, identity at step 0), real training on VVC-coded
shards, exact resume, evaluation/filtering/summary, budget sizing, and the MAC counter
against torch's own flop counter."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from codecnn.cli import main
from codecnn.datasets import ShardDataset
from codecnn.errors import CodecnnError
from codecnn.evaluate import evaluate_data, filter_yuv
from codecnn.evaluate.complexity import kmac_per_pixel
from codecnn.io import shard
from codecnn.models import MODELS, build_model, load_model
from codecnn.models.complexity import count_macs
from codecnn.train import TrainConfig, load_run_config, train_model
from tests.train_data import make_shards

# Small versions of every family: what the contract and training tests run.
TINY = {
    "rdn": {"features": 8, "blocks": 1, "layers": 2, "growth": 4},
    "resnet": {"features": 8, "blocks": 2},
    "imdn": {"features": 8, "blocks": 1},
    "rcan": {"features": 8, "groups": 1, "blocks": 2, "reduction": 4},
    "mobile": {"features": 8, "blocks": 2, "expansion": 2},
    "lop": {"head_features": 4, "features": 8, "layers": 2},
}
PLANES = [("rec",), ("rec", "qp"), ("rec", "qp", "depth")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One real shard: astronaut, 2 frames of 256×192, VVC-coded at QP 37 (12 patches)."""
    out = tmp_path_factory.mktemp("shards")
    make_shards(out, sequences=("astronaut",), qps=(37,))
    return out


def test_every_family_is_in_the_one_table():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("planes", PLANES)
def test_shape_and_identity_at_initialisation(family, planes):
    """132×132 in, the 128×128 residual out; a fresh model leaves rec exactly as it is, and
    the residual path is real (a non-zero tail changes the output)."""
    torch.manual_seed(0)
    model = build_model(family, planes=planes, **TINY[family])
    assert model.config.planes == planes
    x = torch.rand(2, len(planes), 132, 132)
    rec = x[:, :1, 2:-2, 2:-2]
    with torch.no_grad():
        y = model(x)
        assert y.shape == (2, 1, 128, 128) and y.dtype == torch.float32
        assert torch.equal(rec + y, rec)
        model.tail.reset_parameters()
        assert model(x).abs().max() > 0
    # the default (untiny) configuration keeps the contract too
    with torch.no_grad():
        assert torch.equal(build_model(family, planes=planes)(x), torch.zeros(2, 1, 128, 128))


@pytest.mark.parametrize("family", sorted(TINY))
def test_counter_matches_torch_flop_counter(family):
    """Our MACs (convolutions, depthwise ones and the attention gates' 1×1s) equal torch's
    FLOPs / 2, for the default and the tiny configuration."""
    for kw in ({}, TINY[family]):
        torch.manual_seed(0)
        model = build_model(family, planes=("rec", "qp"), **kw).eval()
        x = torch.rand(1, 2, 68, 68)
        ours = sum(r["macs"] for r in count_macs(model, x))
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(x)
        assert ours == fc.get_total_flops() // 2 > 0


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("budget", [12.0, 45.0])
def test_budget_lands_within_five_percent(family, budget):
    model = build_model(family, planes=("rec", "qp"), budget_kmac=budget)
    assert abs(kmac_per_pixel(model) / budget - 1) <= 0.05
    if family != "lop":  # a width family keeps its default depth where it can
        assert model.config.features != build_model(family).config.features


def test_budget_keeps_what_the_user_fixed_and_says_when_impossible():
    m = build_model("resnet", blocks=8, budget_kmac=40)
    assert m.config.blocks == 8 and abs(kmac_per_pixel(m) / 40 - 1) <= 0.05
    with pytest.raises(CodecnnError, match="both are set by hand"):
        build_model("resnet", blocks=8, features=16, budget_kmac=40)
    with pytest.raises(CodecnnError, match="no configuration within"):
        build_model("mobile", budget_kmac=0.01)
    with pytest.raises(CodecnnError, match="no option"):
        build_model("lop", growth=3, budget_kmac=10)


def _config(data, family, **kw) -> TrainConfig:
    base = {"data": (str(data),), "preset": family, "model_overrides": TINY[family],
            "steps": 60, "batch_size": 8, "crop": 32, "seed": 1, "lr": 1e-3, "warmup": 2,
            "val_every": 30, "log_every": 10, "workers": 0, "device": "cpu",
            "sampling": "balanced"}
    return TrainConfig(**{**base, **kw})


def _fixed_loss(model, data) -> float:
    """Mean squared error of rec + residual against orig over every patch of the shard."""
    ds = ShardDataset(shard.shard_paths([str(data)]), planes=model.config.planes)
    items = [ds[i] for i in range(len(ds))]
    x = torch.stack([it["input"] for it in items])
    t = torch.stack([it["target"] for it in items])
    with torch.no_grad():
        return float((model.eval()(x) - t).square().mean())


@pytest.mark.parametrize("family", sorted(TINY))
def test_trains_resumes_exactly_evaluates_and_filters(family, data, tmp_path):
    """60 steps on 32×32 crops of the real shard: the filter beats the identity it started
    as on the shard's whole CTUs (by little: a few steps, a tiny model); 2 + 2 resumed
    steps give bitwise the weights of 4; eval, filter and summary take the checkpoint."""
    straight = tmp_path / "straight"
    train_model(_config(data, family), straight, progress=False)
    model, meta = load_model(straight / "last.pt")
    assert meta["model_name"] == family and meta["step"] == 60
    identity = build_model(family, planes=model.config.planes, **TINY[family])
    assert _fixed_loss(model, data) < _fixed_loss(identity, data)

    short, split = tmp_path / "short", tmp_path / "split"
    train_model(_config(data, family, steps=4, val_every=2), short, progress=False)
    train_model(_config(data, family, steps=4, val_every=2), split, until=2, progress=False)
    train_model(load_run_config(split), split, resume=True, progress=False)
    a = torch.load(short / "last.pt", weights_only=True)
    b = torch.load(split / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k

    rep = evaluate_data(straight / "best.pt", [str(data)], tmp_path / "eval", progress=False)
    assert rep["model"]["name"] == family and rep["summary"]["per_qp"][0]["qp"] == 37
    yuv = data / "yuv" / "astronaut_qp37_rec.yuv"
    done = filter_yuv(straight / "best.pt", yuv, tmp_path / "f.yuv", size=(256, 192),
                      bit_depth=10, qp=37, progress=False)
    assert done["frames"] == 2
    assert (tmp_path / "f.yuv").stat().st_size == yuv.stat().st_size
    res = CliRunner().invoke(main, ["summary", str(straight / "best.pt"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["config"]["features"] == TINY[family]["features"]


def test_cli_train_model_option_budget_and_summary(data, tmp_path):
    """`train --model F --budget-kmac K` records the sized model; `train rdn` still works;
    `summary F --budget-kmac K` prints the chosen configuration."""
    runner = CliRunner()
    res = runner.invoke(main, ["summary", "imdn", "--budget-kmac", "20"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("configuration: planes=('rec', 'qp'), features=")
    single = tmp_path / "d"
    single.mkdir()
    shutil.copy(data / "astronaut_qp37.h5", single)
    common = ["--data", str(single), "--steps", "1", "--batch-size", "2", "--workers", "0",
              "--device", "cpu", "--sampling", "stream", "--val-every", "1"]
    res = runner.invoke(main, ["train", "--model", "lop", "--budget-kmac", "10", *common,
                               "-o", str(tmp_path / "lop")])
    assert res.exit_code == 0, res.output
    model, meta = load_model(tmp_path / "lop" / "last.pt")
    assert meta["model_name"] == "lop" and abs(kmac_per_pixel(model) / 10 - 1) <= 0.05
    res = runner.invoke(main, ["train", "rdn", "--features", "4", "--blocks", "1",
                               "--layers", "1", "--growth", "2", *common,
                               "-o", str(tmp_path / "rdn")])
    assert res.exit_code == 0, res.output
    assert load_model(tmp_path / "rdn" / "last.pt")[1]["model_name"] == "rdn"
    res = runner.invoke(main, ["train", "rdn", "--model", "imdn", *common, "-o",
                               str(tmp_path / "x")])
    assert res.exit_code == 1 and "differ" in res.output
