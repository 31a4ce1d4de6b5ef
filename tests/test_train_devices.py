"""GPU-readiness logic that does not need a GPU: device per rank, RNG states of fewer GPUs,
and the refusal to resume with another number of processes."""

from __future__ import annotations

import json

import pytest
import torch

from codecnn.errors import CodecnnError
from codecnn.train.checkpoint import cuda_states_to_restore
from codecnn.train.loop import check_world_size, cuda_device


def test_each_rank_gets_its_own_gpu():
    assert cuda_device("cuda", world=1, local_rank=0) == torch.device("cuda", 0)
    assert cuda_device("cuda:3", world=1, local_rank=0) == torch.device("cuda", 3)
    assert cuda_device("cuda", world=4, local_rank=2) == torch.device("cuda", 2)
    assert cuda_device("cuda:2", world=4, local_rank=2) == torch.device("cuda", 2)
    with pytest.raises(CodecnnError, match="cuda:LOCAL_RANK"):
        cuda_device("cuda:0", world=4, local_rank=2)  # every rank on GPU 0: refused


def test_rng_states_of_gpus_that_are_gone_are_skipped():
    saved = [torch.zeros(8, dtype=torch.uint8) + i for i in range(8)]  # written on 8 GPUs
    got = cuda_states_to_restore(saved, visible=2)
    assert [i for i, _ in got] == [0, 1] and torch.equal(got[1][1], saved[1])
    assert cuda_states_to_restore(saved, visible=0) == []
    assert len(cuda_states_to_restore(saved[:1], visible=4)) == 1


def test_resume_with_another_world_size_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"resolved": {"world_size": 2}, "train_config": {"batch_size": 16}}))
    check_world_size(tmp_path, 2)
    with pytest.raises(CodecnnError, match=r"2 process\(es\) \(global batch 32\)"):
        check_world_size(tmp_path, 1)


def test_gpu_default_batch_and_workers_per_rank():
    from codecnn.train.config import TrainConfig, default_batch

    assert default_batch(torch.device("cuda", 1)) == 64 and default_batch("cpu") == 16
    assert TrainConfig(data=("x.h5",)).batch_size is None  # resolved by the run
    cfg = TrainConfig(data=("x.h5",))
    assert cfg.loader_workers(False) == 2
    assert cfg.loader_workers(True, cores=16, local_world=1) == 8
    assert cfg.loader_workers(True, cores=32, local_world=8) == 3  # 4 cores per rank
    assert cfg.loader_workers(True, cores=8, local_world=8) == 1
    assert TrainConfig(data=("x.h5",), workers=5).loader_workers(True, cores=2) == 5


_RANK_SCRIPT = """
import json, sys, torch
from codecnn.datasets import ShardDataset
from codecnn.models import build_model
from codecnn.train.loop import evaluate, validation_loader
torch.distributed.init_process_group("gloo")
rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
torch.manual_seed(0)
ds = ShardDataset(sys.argv[1])
model = build_model("rdn-s", planes=ds.planes, features=8, blocks=1, layers=2, growth=4)
with torch.no_grad():
    model.tail.weight.normal_(0, 0.02)
rows = evaluate(model, validation_loader(ds, 1, rank=rank, world=world), torch.device("cpu"))
json.dump(rows, open(sys.argv[2] + f".{rank}", "w"))
torch.distributed.destroy_process_group()
"""


def test_validation_over_two_gloo_ranks_equals_one_process(tmp_path):
    """Each rank scores every other patch; the all-reduced per-frame sums give every rank
    the rows one process gets. (Batch 1: a patch's output must not depend on which patches
    share its batch, which the CPU convolutions do not promise to the last bit.)"""
    import os
    import subprocess
    import sys

    from conftest import REPO

    from codecnn.datasets import ShardDataset
    from codecnn.models import build_model
    from codecnn.train.loop import evaluate, validation_loader
    from tests.train_data import make_shards

    make_shards(tmp_path / "shards", sequences=("astronaut", "coffee"), qps=(37,))
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path / "shards"), str(tmp_path / "rows")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch.manual_seed(0)
    ds = ShardDataset(tmp_path / "shards")
    model = build_model("rdn-s", planes=ds.planes, features=8, blocks=1, layers=2, growth=4)
    with torch.no_grad():
        model.tail.weight.normal_(0, 0.02)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = evaluate(model, validation_loader(ds, 1), torch.device("cpu"))
    finally:
        torch.set_num_threads(n)
    ranks = [json.loads((tmp_path / f"rows.{r}").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert [r["pictures"] for r in one] == [4, 4] and one[0]["gain"] != 0
    for a, b in zip(ranks[0], one, strict=True):
        assert a["qp"] == b["qp"] and a["pictures"] == b["pictures"]
        for k in ("psnr_rec", "psnr_filt", "gain"):
            assert abs(a[k] - b[k]) <= 1e-9, (k, a, b)
