"""The README's examples run as written, in order, in an empty folder.

Every command line of the code blocks in "Using it" is run in one fresh directory, in the
order a reader meets them, with one change: the sizes are made tiny by the table below
(fewer frames, steps, trials and sources), so the whole walk takes a few minutes. Lines
that cannot run here are listed with the reason; anything else that fails is a README bug.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

README = REPO / "README.md"

# (pattern, replacement) applied to every command: tiny sizes, same flow.
TINY = [
    (r"--frames \d+", "--frames 1"),
    (r"--steps-per-trial \d+", "--steps-per-trial 2"),
    (r"--trials \d+", "--trials 2"),
    (r"--steps \d+", "--steps 2"),
    (r"--val-every \d+", "--val-every 2"),
    (r"--batch-size \d+", "--batch-size 4"),
    (r"--val-sequences [\w,]+", "--val-sequences coffee"),
    (r"^codecnn corpus (.*)$", r"codecnn corpus \1 --only astronaut,coffee,chelsea "
                               r"--no-wallpapers --qp 32,37"),
    (r"^codecnn train rdn --resume (\S+) --steps \d+", r"codecnn train rdn --resume \1 --steps 4"),
    # The int16 model's numpy check takes about 50 s even here; tests/test_export.py covers it.
    (r"^(codecnn export .*) --int16", r"\1"),
]
# Lines not run here, and why.
SKIP = {
    "torchrun": "needs several processes (tests/test_train.py runs torchrun on 2)",
    "codecnn zoo train": "the 3-hour rebuild (tests/test_zoo.py rebuilds a tiny recipe)",
    "codecnn demo": "make demo runs it",
    "tensorboard": "a viewer",
}


def readme_commands() -> list[str]:
    """Command lines of the code blocks between '## Using it' and the next '## '."""
    text = README.read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # a comment after the command
            if line.split(" ", 1)[0] in ("codecnn", "torchrun", "tensorboard"):
                lines.append(re.sub(r"\s+", " ", line))
    return lines


def tiny(command: str) -> str:
    for pattern, replacement in TINY:
        command = re.sub(pattern, replacement, command)
    if command.startswith("codecnn train") and "--resume" not in command:
        if "--steps" not in command:
            command += " --steps 2 --val-every 2"
        if "--batch-size" not in command:
            command += " --batch-size 4"
    return command


def test_the_readme_lists_the_main_commands():
    commands = readme_commands()
    for verb in ("encode", "extract", "train", "eval", "filter", "analyze", "corpus", "zoo",
                 "samples", "summary", "dataset"):
        assert any(c.startswith(f"codecnn {verb}") for c in commands), verb


@pytest.mark.slow
def test_every_readme_example_runs_as_written(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    ran = 0
    for command in readme_commands():
        if any(command.startswith(prefix) for prefix in SKIP):
            continue
        line = tiny(command)
        shell = re.sub(r"^codecnn ", f"{shlex.quote(sys.executable)} -m codecnn ", line)
        proc = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"README example failed:\n  {command}\n" \
                                     f"  (run as: {line})\n{proc.stderr[-2000:]}"
        ran += 1
    assert ran >= 25
