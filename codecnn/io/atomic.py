"""Writing files so that a final name only ever holds a complete file.

Every output goes to a temporary sibling (`.NAME.<pid>.tmp`, same directory, so the rename
stays on one file system) and is renamed onto NAME only when it is complete; on an error the
temporary file is removed. An interrupted run therefore never leaves a half file that looks
whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_sibling(path: str | os.PathLike) -> Path:
    """The temporary name `path` is written under before its rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto `path` if the block succeeds."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write text (a newline is added at the end) atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text.rstrip("\n") + "\n")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, default=None) -> Path:
    """Write obj as indented JSON atomically (`default` as for json.dumps)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=default))


def save_figure_atomic(fig, path: str | os.PathLike, **savefig_kw: Any) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", **savefig_kw)
    finally:
        plt.close(fig)
    return Path(path)
