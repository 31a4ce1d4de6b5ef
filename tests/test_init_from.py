"""`train --init-from`: a run started from another run's weights, with input planes added
(the new plane starts at zero, so the output equals the parent's) or dropped."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from codecnn.datasets import ShardDataset
from codecnn.models import build_model, load_model, read_checkpoint
from codecnn.train.init_from import load_matching
from tests.train_data import make_shards

TINY = ("--preset", "rdn-s", "--features", "8", "--blocks", "1", "--layers", "2",
        "--growth", "4", "--batch-size", "4", "--val-every", "3", "--workers", "0",
        "--lr", "3e-3")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Shards with a depth plane, and a parent run trained 3 steps on rec + qp only."""
    root = tmp_path_factory.mktemp("init_from")
    make_shards(root / "shards", sequences=("astronaut", "coffee"), qps=(37,), width=256,
                height=128, depth=True)
    run_cli("train", "rdn", "--data", root / "shards", "--planes", "rec,qp", *TINY,
            "--steps", "3", "-o", root / "parent", check=True)
    return root


def test_an_added_plane_starts_at_zero_and_the_output_equals_the_parents(data):
    parent, _ = load_model(data / "parent" / "last.pt")
    x = torch.stack([ShardDataset(data / "shards")[i]["input"] for i in range(4)])
    assert x.shape[1] == 3 and x[:, 2].std() > 0  # rec, qp, depth (not constant)
    with torch.no_grad():
        want = parent(x[:, :2])
    assert want.abs().max() > 0  # trained: not the identity any more
    child = build_model("rdn", planes=("rec", "qp", "depth"),
                        **{k: v for k, v in parent.config.__dict__.items() if k != "planes"})
    report = load_matching(child, read_checkpoint(data / "parent" / "last.pt"))
    assert report["planes_added"] == ["depth"] and not report["skipped"]
    assert torch.count_nonzero(child.head[0].weight[:, 2]) == 0
    child.eval()
    with torch.no_grad():
        got = child(x)
    assert (got - want).abs().max().item() == 0


def test_a_dropped_plane_and_a_changed_layer_are_reported():
    parent_ckpt = {"model_config": {"planes": ["rec", "qp", "depth"]},
                   "model_state": build_model("rdn-s", planes=("rec", "qp", "depth"),
                                              features=8).state_dict()}
    child = build_model("rdn-s", planes=("qp", "rec"), features=8, growth=8)
    report = load_matching(child, parent_ckpt)
    assert report["planes_dropped"] == ["depth"] and report["planes_added"] == []
    # Planes matched by name: the child's channel 0 (qp) holds the parent's channel 1.
    w = parent_ckpt["model_state"]["head.0.weight"]
    assert torch.equal(child.head[0].weight[:, 0], w[:, 1])
    assert torch.equal(child.head[0].weight[:, 1], w[:, 0])
    assert any(name.startswith("blocks.0.") for name in report["skipped"])  # growth 16 → 8


def test_the_cli_trains_from_the_parent_and_the_checkpoint_records_it(data, tmp_path):
    proc = run_cli("train", "rdn", "--data", data / "shards", "--init-from",
                   data / "parent" / "last.pt", "--steps", "3", "--batch-size", "4",
                   "--val-every", "3", "--workers", "0", "-o", tmp_path / "child")
    assert proc.returncode == 0, proc.stderr
    assert "new input plane(s) depth" in proc.stderr
    ckpt = read_checkpoint(tmp_path / "child" / "last.pt")
    assert ckpt["model_config"]["planes"] == ["rec", "qp", "depth"]
    assert ckpt["model_config"]["features"] == 8  # the parent's architecture
    assert ckpt["step"] == 3 and ckpt["init_from"]["step"] == 3
    assert ckpt["init_from"]["planes_added"] == ["depth"]
    assert len(ckpt["init_from"]["sha256"]) == 64
    head = ckpt["model_state"]["head.0.weight"][:, 2]
    assert torch.count_nonzero(head) > 0  # the new plane's weights trained
    record = json.loads((tmp_path / "child" / "config.json").read_text())
    assert record["init_from"]["path"].endswith("last.pt")
    # A fresh optimizer: the schedule starts again (warm-up from a small lr).
    first = (tmp_path / "child" / "train.csv").read_text().splitlines()[1]
    assert float(first.split(",")[1]) < 3e-3


def test_a_checkpoint_with_nothing_that_fits_is_refused(data, tmp_path):
    torch.save({"model_name": "rdn", "model_config": {"planes": ["rec"]},
                "model_state": {"other.weight": torch.zeros(3)}}, tmp_path / "alien.pt")
    proc = run_cli("train", "rdn", "--data", data / "shards", "--init-from",
                   tmp_path / "alien.pt", "--preset", "rdn-s", "--steps", "2",
                   "--workers", "0", "-o", tmp_path / "r")
    assert_one_line_error(proc, "alien.pt", "no tensor")
    assert not (tmp_path / "r").exists()
