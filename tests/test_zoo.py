"""The shipped models: they load as any checkpoint does, their cards are what `codecnn eval`
measures, and the VVC model really filters content it never saw."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from codecnn.models import load_model, model_from_config
from codecnn.zoo import ZOO_DIR, list_zoo, read_card, resolve_model_path

VVC = "rdn-vvc-ai"
HEVC = "rdn-hevc-ai-depth"


def test_shipped_models_are_listed_small_and_load_with_weights_only():
    assert VVC in list_zoo() and HEVC in list_zoo()
    for name in (VVC, HEVC):
        files = [ZOO_DIR / f"{name}{s}" for s in (".pt", ".json", ".md", ".png")]
        assert sum(f.stat().st_size for f in files) < 2_000_000
        ckpt = torch.load(files[0], weights_only=True)
        assert set(ckpt) >= {"model_name", "model_config", "model_state"}
        assert "optimizer_state" not in ckpt  # weights only, nothing of the training state
        model, meta = load_model(f"zoo:{name}")
        card = read_card(name)
        assert list(model.config.planes) == card["planes"]
        assert meta["model_config"] == card["model_config"]
        for key in ("recipe", "corpus", "training", "heldout", "kmac_per_pixel", "params"):
            assert key in card, key
        assert card["recipe"]["command"].startswith(f"codecnn zoo train {name}")
        assert card["heldout"]["bd_rate_pchip"] is not None
    assert read_card(HEVC)["planes"] == ["rec", "qp", "depth"]


def test_zoo_commands(cli):
    listed = cli("zoo", "list", check=True).stdout
    assert f"zoo:{VVC}" in listed and "BD-rate" in listed
    card = cli("zoo", "card", VVC, check=True).stdout
    assert card.startswith(f"# zoo:{VVC}") and "held-out BD-rate" in card
    assert json.loads(cli("zoo", "card", VVC, "--json", check=True).stdout)["name"] == VVC
    summary = cli("summary", f"zoo:{VVC}", "--json", check=True).stdout
    assert json.loads(summary)["params"] == read_card(VVC)["params"]
    assert_one_line_error(cli("zoo", "card", "nope"), "zoo:nope: no such shipped model")
    assert_one_line_error(cli("summary", "zoo:nope"), "zoo:nope: no such shipped model")
    with pytest.raises(Exception, match="no such shipped model"):
        resolve_model_path("zoo:nope")


def _card_point(name: str, source: str, qp: int) -> dict:
    return read_card(name)["heldout"]["sequences"][source]["per_qp"][str(qp)]


# One held-out picture per model: rocket for VVC (on chelsea at QP 37 the VVC model's card
# says it loses 0.011 dB), chelsea for HEVC.
BOTH = pytest.mark.parametrize("heldout_eval", [(VVC, "vvc", "rocket"),
                                                (HEVC, "hevc", "chelsea")],
                               ids=["vvc", "hevc"], indirect=True)


@pytest.fixture(scope="module")
def heldout_eval(request, tmp_path_factory):
    """A held-out picture coded at QP 37 as the corpus codes it, evaluated with the shipped
    model and with an untrained one (the zero tail: the identity filter)."""
    name, codec, source = request.param
    tmp = tmp_path_factory.mktemp(codec)
    run_cli("corpus", "-o", tmp / "c", "--codec", codec, "--only", source, "--qp", "37",
            "--no-wallpapers", check=True)
    coded = tmp / "c" / f"{codec}-ai" / "coded" / source
    run_cli("eval", "--model", f"zoo:{name}", "--manifest", coded, "--switch", "ctu",
            "-o", tmp / "rep", check=True)
    card = read_card(name)
    identity = model_from_config(card["model_name"], dict(card["model_config"]))
    torch.save({"model_name": "rdn", "model_config": card["model_config"],
                "model_state": identity.state_dict(), "data": {"bit_depth": 10}},
               tmp / "identity.pt")
    run_cli("eval", "--model", tmp / "identity.pt", "--manifest", coded, "-o", tmp / "rep0",
            check=True)

    def result(report):
        return json.loads((tmp / report / "report.json").read_text())["results"][0]

    return name, source, result("rep"), result("rep0")


@BOTH
def test_eval_reproduces_the_card(heldout_eval):
    name, source, got, identity = heldout_eval
    want = _card_point(name, source, 37)
    assert got["psnr_rec"] == pytest.approx(want["psnr_rec"], abs=1e-3)  # the same encode
    assert got["gain"] == pytest.approx(want["gain_db"], abs=0.005)
    assert got["switch"]["gain"] >= 0.0  # CTU switching never loses
    assert identity["gain"] == 0.0  # an untrained model is the identity filter


@pytest.mark.parametrize("heldout_eval", [(HEVC, "hevc", "chelsea")], ids=["hevc"],
                         indirect=True)
def test_shipped_hevc_model_beats_the_identity(heldout_eval):
    _, _, got, identity = heldout_eval
    assert got["gain"] > 0.01 > identity["gain"]


@pytest.mark.parametrize("heldout_eval", [(VVC, "vvc", "rocket")], ids=["vvc"], indirect=True)
def test_shipped_vvc_model_beats_the_identity(heldout_eval):
    """The check an untrained model fails: on a picture it never saw, at QP 37."""
    _, _, got, identity = heldout_eval
    assert got["gain"] > 0.05 > identity["gain"]


def test_the_vvc_card_names_its_parent_and_where_it_does_not_gain():
    card = read_card(VVC)
    parent = card["started_from"]
    assert parent["path"] == f"zoo:{HEVC}" and parent["planes_dropped"] == ["depth"]
    assert len(parent["sha256"]) == 64
    assert card["heldout"]["bd_rate_pchip"] < -0.5  # a real held-out gain
    shortfalls = card["heldout"]["always_on_not_positive"]
    per_seq = card["heldout"]["sequences"]
    losing = [f"{s} QP {q}" for s, v in per_seq.items() for q, p in v["per_qp"].items()
              if p["gain_db"] <= 0]
    assert all(any(x in line for line in shortfalls) for x in losing)


def test_rebuild_trains_a_recipe_in_stages_and_writes_its_card(tmp_path, monkeypatch):
    """`codecnn zoo train` at a tiny size: corpus, a first run, its resume to the recipe's
    extend_to, the held-out card; run again, it trains nothing."""
    from codecnn.zoo import recipes

    tiny = recipes.Recipe(
        name="tiny", description="a test recipe", codec="vvc", config="ai",
        train={"preset": "rdn-s", "model_overrides": {"features": 8, "blocks": 1, "layers": 2,
                                                      "growth": 4},
               "planes": ("rec", "qp"), "steps": 3, "batch_size": 2, "crop": 32,
               "val_every": 3, "log_every": 1, "sampling": "balanced", "in_memory": True,
               "workers": 0, "val_sequences": ("coffee",)},
        extend_to=(6,))
    assert tiny.stages() == [3, 6] and tiny.stages(steps=30) == [30, 60]
    monkeypatch.setitem(recipes.RECIPES, "tiny", tiny)
    kw = dict(corpus=tmp_path / "c", out_dir=tmp_path / "z", jobs=1, wallpapers=False,
              only=("astronaut", "coffee", "chelsea"), qps=(32, 37), echo=lambda *_: None,
              command=["codecnn", "zoo", "train", "tiny"])
    card = recipes.rebuild("tiny", **kw)
    run = tmp_path / "z" / "tiny" / "run"
    steps = [int(r.split(",")[0]) for r in (run / "train.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]  # one run: 3 steps, then resumed to 6
    assert card["training"]["steps"] == 6 and card["recipe"]["stages"] == [3, 6]
    assert card["corpus"]["heldout_sources"] == ["chelsea"]
    assert [r["qp"] for r in card["heldout"]["per_qp"]] == [32, 37]
    md = (tmp_path / "z" / "tiny" / "tiny.md").read_text()
    assert "Trained to step 3" in md and "then resumed to 6" in md
    before = (run / "train.csv").read_text()
    recipes.rebuild("tiny", **kw)
    assert (run / "train.csv").read_text() == before  # finished: nothing trained again


def test_card_wall_time_adds_up_resumed_invocations():
    from codecnn.evaluate.compare import cumulative_elapsed

    rows = [{"elapsed_s": t} for t in (10, 20, 30, 5, 15, 2)]
    assert cumulative_elapsed(rows) == [10, 20, 30, 35, 45, 47]
