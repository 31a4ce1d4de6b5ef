"""`codecnn sweep`: a 3-trial Bayesian sweep of real (tiny) training runs, killed in the middle
of a trial and resumed, proposes exactly the trials of an uninterrupted sweep."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, assert_one_line_error, run_cli

from codecnn.errors import CodecnnError
from codecnn.evaluate.complexity import kmac_per_pixel
from codecnn.experiments.space import make_space, read_space_file
from codecnn.experiments.sweep import resolve_settings, run_sweep
from codecnn.models import load_model, read_checkpoint
from tests.train_data import make_shards

SPACE = {"lr": [1e-4, 3e-3], "features": [4, 8], "blocks": [1, 2], "crop": [16, 32],
         "loss": ["mse", "l1"], "kmac": [1.0, 3.0], "preset": "rdn-s",
         "model": {"layers": 2, "growth": 4},
         "train": {"batch_size": 2, "workers": 0, "val_every": 1}}
# 2 random trials, then one the optimiser chooses from their scores
SWEEP = ("--trials", "3", "--steps-per-trial", "2", "--seed", "1", "--init-points", "2")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    make_shards(root / "shards", sequences=("astronaut", "coffee"), qps=(37,), width=256,
                height=128)
    (root / "space.json").write_text(json.dumps(SPACE))
    return root


def _settings(data, seed: int = 1):
    space = make_space(read_space_file(data / "space.json"), {})
    return resolve_settings(space, [str(data / "shards")], None, steps_per_trial=2, seed=seed,
                            init_points=2)


@pytest.fixture(scope="module")
def reference(data):
    """An uninterrupted sweep (in this process: the library call the CLI makes)."""
    out = data / "reference"
    run_sweep(_settings(data), out, trials=3, progress=False)
    return out


def _trials(sweep) -> list[dict]:
    return [{**json.loads((sweep / f"trial_{k:03d}" / "trial.json").read_text()),
             **json.loads((sweep / f"trial_{k:03d}" / "result.json").read_text())}
            for k in range(3)]


def test_a_killed_sweep_resumes_with_the_trials_of_an_uninterrupted_one(data, reference):
    out = data / "killed"
    args = ["sweep", "--data", data / "shards", "--space", data / "space.json", *SWEEP,
            "-o", out]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "codecnn", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # SIGKILL as soon as trial 1 has its first checkpoint (step 1 of 2): mid-trial
    first_ckpt = out / "trial_001" / "last.pt"
    deadline = time.monotonic() + 300
    while not first_ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert (out / "trial_000" / "result.json").is_file()
    assert not (out / "trial_001" / "result.json").exists()
    assert read_checkpoint(first_ckpt)["step"] == 1
    assert not (out / "trial_002").exists()

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    got, want = _trials(out), _trials(reference)
    assert [t["kind"] for t in got] == ["random", "random", "bayes"]
    assert [t["params"] for t in got] == [t["params"] for t in want]
    assert [t["score"] for t in got] == [t["score"] for t in want]  # exact resume of trial 1
    # the optimiser's trial differs from both random ones: it was not a replay of them
    assert got[2]["params"] not in (got[0]["params"], got[1]["params"])
    assert read_checkpoint(out / "trial_001" / "last.pt")["step"] == 2
    assert "best trial" in proc.stdout


def test_the_report_and_the_complexity_range(reference):
    results = json.loads((reference / "results.json").read_text())
    assert results["finished"] == 3
    best = max(results["trials"], key=lambda t: t["score"])
    assert results["best"]["trial"] == best["trial"]
    rows = list(csv.DictReader((reference / "results.csv").open()))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2]
    assert [float(r["score"]) for r in rows] == [t["score"] for t in results["trials"]]
    md = (reference / "results.md").read_text()
    assert f"| {best['trial']} ★" in md
    assert (reference / "scores.png").stat().st_size > 10_000
    for k in range(3):
        assert list((reference / "tb" / f"trial_{k:03d}").glob("events.out.tfevents.*"))
    for t in results["trials"]:
        # every trial's network lies in the stated kMAC range, counted independently
        net, _ = load_model(reference / f"trial_{t['trial']:03d}" / "best.pt")
        kmac = kmac_per_pixel(net)
        assert 1.0 <= kmac <= 3.0
        assert t["params"]["kmac"] == pytest.approx(kmac, abs=1e-3)
        assert net.config.features == t["params"]["features"]
        assert 1e-4 <= t["params"]["lr"] <= 3e-3


def test_a_bayes_trial_waits_for_its_history_and_a_rerun_must_match(data, reference,
                                                                   tmp_path):
    with pytest.raises(CodecnnError, match="trial 2 is chosen by the optimiser"):
        run_sweep(_settings(data), tmp_path / "farm", trials=3, only_trial=2, progress=False)
    proc = run_cli("sweep", "--data", data / "shards", "--space", data / "space.json", *SWEEP,
                   "--seed", "2", "-o", reference)
    assert_one_line_error(proc, "sweep.json", "seed")


def test_a_bad_space_is_one_line_naming_it(data, tmp_path):
    bad = tmp_path / "space.json"
    bad.write_text(json.dumps({"lr": [1e-3, 1e-2], "width": [8, 16]}))
    proc = run_cli("sweep", "--data", data / "shards", "--space", bad, "-o", tmp_path / "s")
    assert_one_line_error(proc, str(bad), "width")
    space = make_space({"features": [4, 6], "blocks": [1, 1], "kmac": [500, 600],
                        "preset": "rdn-s"}, {})
    settings = resolve_settings(space, [str(data / "shards")], None, 2, 0, 1)
    with pytest.raises(CodecnnError, match="kMAC/px"):
        run_sweep(settings, tmp_path / "s2", trials=1, progress=False)
