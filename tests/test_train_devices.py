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
