"""Training on real VVC-coded shards: loss goes down, exact resume, NaN stop, DDP, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO, assert_one_line_error, run_cli

from codecnn.errors import CodecnnError
from codecnn.models import build_model, load_model
from codecnn.models.complexity import summarize
from codecnn.train import NonFiniteLoss, TrainConfig, evaluate, load_run_config, train_model
from codecnn.train.checkpoint import save_checkpoint
from codecnn.train.logs import read_csv
from codecnn.train.loop import validation_loader
from codecnn.train.schedule import warmup_cosine
from tests.train_data import make_shards

TINY = {"features": 8, "blocks": 1, "layers": 2, "growth": 4}
TINY_ARGS = ["--features", "8", "--blocks", "1", "--layers", "2", "--growth", "4"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two sequences (astronaut, coffee), 2 frames of 256×192 each, VVC-coded at QP 37."""
    out = tmp_path_factory.mktemp("shards")
    make_shards(out, sequences=("astronaut", "coffee"), qps=(37,))
    return out


def tiny_config(shards, **kw) -> TrainConfig:
    base = {"data": (str(shards),), "preset": "rdn-s", "model_overrides": TINY, "steps": 6,
            "batch_size": 4, "seed": 1, "lr": 2e-3, "warmup": 2, "val_every": 3,
            "log_every": 1, "workers": 0, "device": "cpu", "sampling": "stream"}
    base.update(kw)
    return TrainConfig(**base)


def test_summary_kmac_equals_hand_count():
    """planes rec+qp, F=4, 1 RDB × 2 layers, g=2, 12×12 input → 8×8 output (64 pixels)."""
    model = build_model("rdn", planes=("rec", "qp"), features=4, blocks=1, layers=2, growth=2)
    s = summarize(model, 12, 12, train_batch=2, infer_batch=1)
    hand = (
        2 * 9 * 4 * 10 * 10  # head conv 1: 2→4, 3×3, valid → 10×10
        + 4 * 9 * 4 * 64  # head conv 2: 4→4 → 8×8
        + 4 * 9 * 2 * 64 + 6 * 9 * 2 * 64  # dense layers: 4→2, 6→2
        + 8 * 4 * 64  # local fusion 1×1: 8→4
        + 4 * 4 * 64 + 4 * 9 * 4 * 64  # global fusion 1×1 + 3×3
        + 4 * 9 * 1 * 64  # tail 4→1
    )
    assert s["macs_per_patch"] == hand == 42528
    assert s["kmac_per_pixel"] == pytest.approx(hand / 64 / 1000)
    assert s["params"] == sum(p.numel() for p in model.parameters())
    assert s["train_activation_mib"] > 0 and s["infer_activation_mib"] > 0


def test_summary_cli_json_and_table():
    import json

    proc = run_cli("summary", "rdn-s", "--json", "--size", "36", check=True)
    s = json.loads(proc.stdout)
    assert s["params"] == sum(p.numel() for p in build_model("rdn-s").parameters())
    assert 200 < s["kmac_per_pixel"] < 240  # the research notes' rdn-s is ~231 kMAC/px
    assert s["kmac_per_pixel_basis"] == "per output pixel of the 32x32 CTU"
    assert s["train_activation_mib"] > 10 * s["infer_activation_mib"]
    table = run_cli("summary", "rdn-ds", "--size", "36", check=True).stdout
    assert "kMAC/pixel" in table and "parameters" in table
    assert_one_line_error(run_cli("summary", "rdn-xl"), "unknown model or preset 'rdn-xl'")
    assert_one_line_error(run_cli("summary", "rdn-ds", "--size", "35"), "35x35 does not fit")


def test_schedule_warmup_then_cosine():
    lrs = [warmup_cosine(s, 10, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] < 0.05


def test_training_lowers_loss_and_writes_run(shards, tmp_path):
    """80 steps on the 8 patches of one real shard: the loss goes down and the filter beats
    the reconstruction on the data it trained on (a single sequence validates on it)."""
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(shards / "astronaut_qp37.h5", single)
    run = tmp_path / "run"
    s = train_model(tiny_config(single, steps=80, batch_size=8, lr=3e-3, warmup=5,
                                val_every=80, log_every=10), run, progress=False)
    losses = [float(r["loss"]) for r in read_csv(run / "train.csv")]
    assert len(losses) == 8
    assert losses[-1] < 0.98 * losses[0]
    assert "single sequence" in s["val_note"] and "TRAINING data" in s["val_note"]
    assert s["step"] == 80 and s["val"][-1]["qp"] == "all"
    assert s["val"][0]["gain"] > 0.005  # filtered beats rec (training data)
    for name in ("config.json", "command.txt", "val.csv", "curves.png", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").iterdir())
    assert not list(run.glob(".*.tmp"))
    model, meta = load_model(run / "last.pt")
    assert meta["step"] == 80 and meta["model_name"] == "rdn"
    assert model.config.planes == ("rec", "qp") and model.config.features == 8


def test_validation_psnr_matches_skimage(shards):
    """PSNR of the reconstruction from the patches equals scikit-image's on the full frames,
    and a zero residual (tail zeroed) gains exactly 0 dB."""
    from skimage.metrics import peak_signal_noise_ratio

    from codecnn.datasets import ShardDataset

    ds = ShardDataset(shards / "coffee_qp37.h5")
    model = build_model("rdn-s", planes=ds.planes, **TINY)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
    rows = evaluate(model, validation_loader(ds, 3), torch.device("cpu"))
    w, h = 256, 192
    size = w * h * 3 // 2
    orig = np.fromfile(shards / "yuv" / "coffee.yuv", "<u2").reshape(-1, size)[:, : w * h]
    rec = np.fromfile(shards / "yuv" / "coffee_qp37_rec.yuv", "<u2").reshape(-1, size)[:, : w * h]
    ref = np.mean([peak_signal_noise_ratio(o, r, data_range=1023) for o, r in zip(orig, rec,
                                                                                  strict=True)])
    assert rows[0]["qp"] == 37 and rows[0]["pictures"] == 2
    assert rows[0]["psnr_rec"] == pytest.approx(ref, abs=1e-3)
    assert rows[0]["gain"] == 0.0


def _weights(path):
    return torch.load(path, weights_only=True)


def test_resume_is_exact(shards, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    # one DataLoader worker: the patch order must not depend on worker processes
    s = train_model(tiny_config(shards, workers=1), straight, progress=False)
    assert "split by sequence" in s["val_note"]
    train_model(tiny_config(shards, workers=1), split, until=3, progress=False)
    assert _weights(split / "last.pt")["step"] == 3
    # resumed in this process: the same thread count as the straight run, so bitwise equal
    train_model(load_run_config(split), split, resume=True, progress=False)
    a, b = _weights(straight / "last.pt"), _weights(split / "last.pt")
    assert b["step"] == 6
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    for k, st in a["optimizer_state"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], b["optimizer_state"]["state"][k]["exp_avg_sq"])
    assert a["scheduler_state"]["last_epoch"] == b["scheduler_state"]["last_epoch"] == 6
    # the logs of the resumed run hold each step once, with the straight run's losses
    la = [r["loss"] for r in read_csv(straight / "train.csv")]
    lb = [r["loss"] for r in read_csv(split / "train.csv")]
    assert la == lb
    # a truncated checkpoint: a clear one-line error naming the file
    data = (split / "last.pt").read_bytes()
    (split / "last.pt").write_bytes(data[: len(data) // 3])
    assert_one_line_error(run_cli("train", "rdn", "--resume", split, "--steps", "9"),
                          "last.pt: not a readable checkpoint")


def test_default_batch_is_recorded_resolved(shards, tmp_path):
    """Without a batch size the run takes its device's default (16 on the CPU, 64 on a GPU)
    and records the number, so a resume on another device keeps it."""
    import json

    run = tmp_path / "run"
    train_model(tiny_config(shards, steps=1, val_every=1, batch_size=None), run, progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["train_config"]["batch_size"] == record["resolved"]["batch_size"] == 16
    assert load_run_config(run).batch_size == 16


def test_nan_loss_stops_within_one_step(shards, tmp_path, monkeypatch):
    import codecnn.train.loop as loop

    real = loop.compute_loss
    calls = {"n": 0}

    def poisoned(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(loop, "compute_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 5.*keeps step 3"):
        train_model(tiny_config(shards, steps=10), run, progress=False)
    assert calls["n"] == 5  # stopped at once, no further step
    for name in ("last.pt", "best.pt"):
        ck = _weights(run / name)
        assert ck["step"] == 3
        assert all(torch.isfinite(v).all() for v in ck["model_state"].values())
    assert not list(run.glob(".*.tmp"))


def test_non_finite_weights_are_never_written(tmp_path):
    model = build_model("rdn-s", **TINY)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with torch.no_grad():
        model.tail.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(CodecnnError, match="non-finite weights"):
        save_checkpoint(tmp_path / "x.pt", model_name="rdn", model_config={}, model=model,
                        optimizer=opt, scheduler=sched, step=1, data={}, best_metric=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process_with_twice_the_batch(shards, tmp_path):
    """2 ranks × batch 2 must train the weights 1 process × batch 4 trains: the ranks draw
    disjoint halves of each global batch, and DDP averages their gradients. (Whole 32×32
    crops, so every rank's loss averages the same number of pixels.)"""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    common = ["train", "rdn", "--data", str(shards), "--val", str(shards), "--steps", "4",
              "--val-every", "4", "--workers", "0", "--device", "cpu", "--crop", "32",
              "--qp-weighting", "none", "--lr", "2e-3", "--seed", "3", *TINY_ARGS]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "codecnn", *common, "--batch-size", "2", "-o", str(tmp_path / "ddp")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = run_cli(*common, "--batch-size", "4", "-o", tmp_path / "one")
    assert single.returncode == 0, single.stderr
    ddp, one = _weights(tmp_path / "ddp" / "last.pt"), _weights(tmp_path / "one" / "last.pt")
    assert ddp["step"] == one["step"] == 4
    for k, v in one["model_state"].items():
        torch.testing.assert_close(ddp["model_state"][k], v, rtol=1e-4, atol=1e-6)
    assert one["model_state"]["tail.weight"].abs().max() > 1e-4  # trained (it starts at 0)
    import json

    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["resolved"]["world_size"] == 2 and cfg["resolved"]["global_batch"] == 4
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pt")) == ["best.pt", "last.pt"]
    assert not list((tmp_path / "ddp").glob(".*.tmp"))
    assert len(read_csv(tmp_path / "ddp" / "val.csv")) == 2  # validated once, by rank 0


def test_cli_until_then_resume_elsewhere_equals_a_straight_run(shards, tmp_path):
    """As a user runs it: --until in one process, --resume in a new one started from another
    directory (relative --data), against a straight run; and a changed data set refused."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(shards, work / "shards", ignore=shutil.ignore_patterns("yuv"))
    args = ["train", "rdn", "--data", "shards", "--steps", "6", "--batch-size", "4",
            "--val-every", "3", "--workers", "0", "--device", "cpu", "--seed", "2", *TINY_ARGS]
    run_cli(*args, "-o", "straight", cwd=work, check=True)
    run_cli(*args, "--until", "3", "-o", "split", cwd=work, check=True)
    assert _weights(work / "split" / "last.pt")["step"] == 3
    run_cli("train", "rdn", "--resume", work / "split", cwd=tmp_path, check=True)
    a, b = _weights(work / "straight" / "last.pt"), _weights(work / "split" / "last.pt")
    assert b["step"] == 6
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    # The data changed under the run: one more shard in the folder.
    shutil.copy(work / "shards" / "astronaut_qp37.h5", work / "shards" / "more_qp37.h5")
    assert_one_line_error(run_cli("train", "rdn", "--resume", work / "split", "--steps", "9",
                                  cwd=tmp_path), "split", "data differs")


def test_bad_input_one_line_errors(shards, tmp_path):
    base = ["train", "rdn", "--steps", "2", "--batch-size", "2", "--workers", "0", *TINY_ARGS]
    assert_one_line_error(run_cli(*base, "--data", tmp_path / "nowhere", "-o", tmp_path / "r0"),
                          "nowhere", "no such file")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(shards / "astronaut_qp37.h5", mixed / "a.h5")
    shutil.copy(shards / "coffee_qp37.h5", mixed / "b.h5")
    with h5py.File(mixed / "b.h5", "r+") as f:
        f.attrs["bit_depth"] = 8
    assert_one_line_error(run_cli(*base, "--data", mixed, "-o", tmp_path / "r1"), "bit_depth")
    assert_one_line_error(run_cli(*base, "--data", shards, "--preset", "rdn-xl",
                                  "-o", tmp_path / "r2"), "unknown model or preset 'rdn-xl'")
    run = tmp_path / "r3"
    train_model(tiny_config(shards, steps=2, val_every=2), run, progress=False)
    assert_one_line_error(run_cli("train", "rdn", "--resume", run, "--steps", "4",
                                  "--preset", "rdn-ds"), "was trained with model rdn", "rdn-ds")
    assert_one_line_error(run_cli("train", "rdn", "--resume", run, "--steps", "4",
                                  "--batch-size", "7", "--seed", "3"),
                          "keeps the run's batch_size, seed")
    with pytest.raises(CodecnnError, match="features=8.*features=16"):
        train_model(tiny_config(shards, steps=4, model_overrides={**TINY, "features": 16}),
                    run, resume=True, progress=False)
    with pytest.raises(CodecnnError, match="--resume"):
        train_model(tiny_config(shards, steps=4), run, progress=False)
    with pytest.raises(CodecnnError, match="already at step 2"):
        train_model(tiny_config(shards, steps=2), run, resume=True, progress=False)


def test_the_recorded_command_reruns_the_same_run(shards, tmp_path):
    """What a Python caller (demo, zoo) records in command.txt is a `codecnn train` line
    that, run in a shell, starts the same configuration."""
    import json
    import shlex

    from codecnn.train.command import train_command

    config = tiny_config(shards, steps=2, val_every=2, warmup=1, log_every=1,
                         weight_decay=3e-4, sampling="balanced", crop=32, dihedral=False,
                         qp_weighting="sqrt", val_sequences=("coffee",),
                         source_weights={"astronaut": 2.0}, full_ctus_only=True,
                         lr=1e-3)
    train_model(config, tmp_path / "py", command=train_command(config, str(tmp_path / "py")),
                progress=False)
    line = (tmp_path / "py" / "command.txt").read_text().strip()
    args = shlex.split(line)
    assert args[:3] == ["codecnn", "train", "rdn"]
    args[-1] = str(tmp_path / "shell")  # the same command into another run directory
    run_cli(*args[1:], check=True)
    a = json.loads((tmp_path / "py" / "config.json").read_text())["train_config"]
    b = json.loads((tmp_path / "shell" / "config.json").read_text())["train_config"]
    assert a == b
    # The same computation (up to the thread count's summation order: this process uses 1)
    torch.testing.assert_close(
        _weights(tmp_path / "py" / "last.pt")["model_state"]["tail.weight"],
        _weights(tmp_path / "shell" / "last.pt")["model_state"]["tail.weight"],
        rtol=1e-3, atol=1e-7)


def test_curves_of_short_runs_show_points_integer_steps_and_the_loss_unit(shards, tmp_path):
    """A real 2-step run: both rows are markers, steps are whole numbers, the loss says what
    it is; a run with nothing logged says so instead of an empty frame."""
    from codecnn.train.logs import curves_figure

    run = tmp_path / "run"
    train_model(tiny_config(shards, steps=2, val_every=1, log_every=1, qp_weighting="energy"),
                run, progress=False)
    fig = curves_figure(run)
    loss_ax, val_ax = fig.axes[:2]
    (line,) = loss_ax.get_lines()
    assert len(line.get_xdata()) == 2 and line.get_marker() == "o"
    assert "MSE of (orig − filtered)/peak" in loss_ax.get_ylabel()
    assert "QP-weighted" in loss_ax.get_ylabel() and "energy" in loss_ax.get_title()
    for ax in (loss_ax, val_ax):
        lo, hi = ax.get_xlim()
        locs = [v for v in ax.xaxis.get_major_locator()() if lo <= v <= hi]
        assert locs and all(float(v).is_integer() for v in locs), locs
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = [t.get_text() for ax in curves_figure(empty).axes for t in ax.texts]
    assert texts == ["no training rows logged yet", "no validation yet"]


def test_val_csv_of_earlier_versions_reads_with_the_shared_names(tmp_path):
    """Runs written before the scorer was shared named the columns nominal_qp, psnr_filtered,
    gain_db and frames; they still plot, resume and feed a zoo card."""
    from codecnn.train.logs import RunLog, curves_figure, read_val_csv

    (tmp_path / "val.csv").write_text("step,nominal_qp,psnr_rec,psnr_filtered,gain_db,frames\n"
                                      "2,37,30.0,30.1,0.1,4\n2,all,30.0,30.1,0.1,4\n"
                                      "4,37,30.0,30.2,0.2,4\n")
    rows = read_val_csv(tmp_path / "val.csv")
    assert rows[0] == {"step": "2", "qp": "37", "psnr_rec": "30.0", "psnr_filt": "30.1",
                       "gain": "0.1", "pictures": "4"}
    curves_figure(tmp_path)
    RunLog(tmp_path, resume_step=2, tensorboard=False).close()
    assert [r["qp"] for r in read_val_csv(tmp_path / "val.csv")] == ["37", "all"]


def test_resume_rule_lives_on_train_config():
    from codecnn.train.config import ResumeChange

    old = TrainConfig(data=("d",), steps=100, batch_size=8, warmup=-1)
    new = old.resumed_with(steps=200, batch_size=8, device="cpu")
    assert (new.steps, new.warmup, new.device) == (200, old.warmup_steps, "cpu")
    with pytest.raises(ResumeChange, match="keeps the run's batch_size, seed"):
        old.resumed_with(batch_size=16, seed=3)
