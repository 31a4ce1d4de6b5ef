"""`codecnn compare` on small real runs (trained here, evaluated with `codecnn eval` on
really coded held-out data), and `codecnn reproduce` at tiny size."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error, run_cli

from codecnn.cli import main
from codecnn.corpus import build_corpus
from codecnn.evaluate.compare import pareto
from codecnn.reproduce import reproduce_seed_rdn

ONLY = ("astronaut", "chelsea")  # one training still, one held-out still (4 QPs each)
TINY_TRAIN = ["--steps", "2", "--batch-size", "2", "--crop", "32", "--workers", "0",
              "--device", "cpu", "--val-every", "2"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A real two-source corpus: VVenC All Intra at QP 22/27/32/37, shards and manifests."""
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root, only=ONLY, wallpapers=False, jobs=2, progress=False)
    return root


def _ok(*args: str) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def test_compare_two_real_runs(corpus, tmp_path):
    c = corpus / "vvc-ai"
    runs = {"lop": ["--features", "8", "--layers", "1"],
            "mobile": ["--features", "4", "--blocks", "1"]}
    for family, size in runs.items():
        run = tmp_path / family
        _ok("train", "--model", family, *size, *TINY_TRAIN, "--data", c / "shards" / "train",
            "-o", run)
        _ok("eval", "--model", run / "best.pt", "--manifest", c / "coded" / "chelsea",
            "--switch", "ctu", "-o", run / "eval")
    out = _ok("compare", tmp_path / "lop", tmp_path / "mobile" / "eval", "-o", tmp_path / "cmp")
    assert "| lop | lop |" in out.replace(" ★", "") and "best on BD-rate" in out
    rec = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [e["family"] for e in rec["entries"]] == ["lop", "mobile"]
    assert rec["metric"] == "bd_rate" and rec["same_data"] and rec["qps"] == [22, 27, 32, 37]
    for e in rec["entries"]:
        assert e["bd_rate"] is not None and e["switch_bd_rate"] is not None
        assert e["kmac_per_pixel"] > 0 and e["params"] > 0
        assert e["step"] == e["steps"] == 2 and e["wall_s"] > 0
        assert len(e["per_qp"]) == 4 and e["train_data"] == "1 seq, 64 patches"
    assert any(e["pareto"] for e in rec["entries"])
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## Overall" in md and all(f"## QP {q}" in md for q in (22, 27, 32, 37))
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same output again: refused without --overwrite, replaced with it
    assert_one_line_error(run_cli("compare", tmp_path / "lop", tmp_path / "mobile",
                                  "-o", tmp_path / "cmp"), "cmp: already exists")
    _ok("compare", tmp_path / "lop", tmp_path / "mobile", "-o", tmp_path / "cmp", "--overwrite")
    # evaluated on other data (the held-out shards): refused unless allowed
    _ok("eval", "--model", tmp_path / "mobile" / "best.pt", "--data",
        c / "shards" / "heldout", "-o", tmp_path / "on-shards")
    assert_one_line_error(run_cli("compare", tmp_path / "lop", tmp_path / "on-shards", "-o",
                                  tmp_path / "cmp2"),
                          "report.json: evaluated on other data", "--allow-different-data")
    _ok("compare", tmp_path / "lop", tmp_path / "on-shards", "-o", tmp_path / "cmp2",
        "--allow-different-data")
    assert "different data" in (tmp_path / "cmp2" / "compare.md").read_text()
    assert json.loads((tmp_path / "cmp2" / "compare.json").read_text())["metric"] == "gain"
    # a run that was never evaluated
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text("{}")
    assert_one_line_error(run_cli("compare", tmp_path / "bare", "-o", tmp_path / "cmp3"),
                          "bare: a training run without an evaluation report")


def test_pareto_front():
    pts = [{"kmac_per_pixel": k, "bd_rate": b} for k, b in
           [(10, -1.0), (20, -2.0), (30, -1.5), (20, -2.0), (5, None)]]
    assert pareto(pts, "bd_rate", True) == [True, True, False, True, False]


def test_reproduce_seed_rdn_tiny(corpus, tmp_path):
    """The three variants, shrunk alike, trained 1 step each: the notes' table, the order
    line, compare's outputs; run again, every training and report is kept."""
    lines: list[str] = []
    kw = {"steps": 1, "batch_size": 2, "crop": 32, "codec": "vvc", "only": ONLY,
          "device": "cpu",
          "wallpapers": False, "shrink": {"features": 4, "layers": 1, "growth": 2},
          "echo": lines.append, "progress": False}
    c = reproduce_seed_rdn(corpus, tmp_path / "seed", **kw)
    text = "\n".join(lines)
    assert "about 2 hours on 2 CPU cores" in text and "trained on VVC" in text
    assert "| rdn-s |" in text and "| +0.15 |" in text and "| +0.20 |" in text
    assert "order matches the notes" in text or "order does NOT match the notes" in text
    assert "rdn-m − rdn-s: ours" in text and "notes +0.05 dB" in text
    assert [e["label"] for e in c["entries"]] == ["rdn-s", "rdn-m", "rdn-ds"]
    assert all(e["bd_rate"] is not None for e in c["entries"])
    assert (tmp_path / "seed" / "compare" / "compare.png").is_file()
    lines.clear()
    reproduce_seed_rdn(corpus, tmp_path / "seed", **kw)
    assert "\n".join(lines).count("held-out report kept") == 3


def test_reproduce_budget_cli_tiny(corpus, tmp_path):
    out = _ok("reproduce", "budget", "--corpus", corpus, "--only", ",".join(ONLY),
              "--families", "lop,mobile", "--budget-kmac", "5", "--steps", "1",
              "--batch-size", "2", "--crop", "32", "--codec", "vvc", "--device", "cpu",
              "--no-wallpapers",
              "-o", tmp_path / "b")
    assert "lop-5k" in out and "mobile-5k" in out and "best on " in out
    rec = json.loads((tmp_path / "b" / "compare" / "compare.json").read_text())
    assert all(abs(e["kmac_per_pixel"] / 5 - 1) <= 0.05 for e in rec["entries"])
