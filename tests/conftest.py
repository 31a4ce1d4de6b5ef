"""Shared test helpers. Data is made on the fly: a few real frames, really encoded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, check: bool = False, cwd: str | os.PathLike | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m codecnn ARGS` in a fresh process, as a user would from a shell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "codecnn", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"codecnn {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, a single line on stderr, no traceback, naming the cause."""
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for frag in fragments:
        assert frag in err, f"{frag!r} not in {err!r}"


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (bitwise-reproducible training steps; no contention
    with the subprocesses a test starts). Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# The files that take longest, longest first (measured with `pytest --junitxml`, summed per
# file). `make test` hands whole files to its workers in collection order
# (--dist loadfile --no-loadscope-reorder), so starting the long ones first keeps one worker
# from running a long file alone at the end.
LONGEST_FIRST = ("test_bad_inputs", "test_train", "test_evaluate", "test_families",
                 "test_models", "test_export", "test_readme", "test_fuzz", "test_demo",
                 "test_extract", "test_analysis", "test_hevc")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: order kept
