"""Writing files so that a final name only ever holds a complete file.

Every output goes to a temporary sibling (`.NAME.<pid>.tmp`, same directory, so the rename
stays on one file system) and is renamed onto NAME only when it is complete; on an error the
temporary file is removed. An interrupted run therefore never leaves a half file that looks
whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from codecnn.errors import DataError


def temporary_sibling(path: str | os.PathLike) -> Path:
    """The temporary name `path` is written under before its rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _pid_of(tmp: Path) -> int | None:
    """The writer's pid in `.NAME.<pid>.tmp`, or None for a name of another form."""
    parts = tmp.name.rsplit(".", 2)
    if len(parts) != 3 or not tmp.name.startswith(".") or parts[2] != "tmp":
        return None
    return int(parts[1]) if parts[1].isdigit() else None


def remove_stale_temporaries(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the `.NAME.<pid>.tmp` files (or directories) in `directory` whose writer no
    longer runs: what an interrupted run left. Only `name`'s when given. Returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for tmp in directory.glob(f".{name}.*.tmp" if name else ".*.tmp"):
        pid = _pid_of(tmp)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def new_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Create `path` (and missing parents) for a block; if the block fails, remove the
    directories it created that are still empty, so a refused input leaves nothing."""
    path = Path(path)
    created = []
    p = path
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for d in created:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break
        raise


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


def atomic_dir(out_dir: str | Path, write: Callable[[Path], None], overwrite: bool) -> Path:
    """Run `write(tmp_dir)` and rename tmp_dir to out_dir: a directory of outputs (a report)
    appears whole or not at all. DataError if out_dir exists and not `overwrite`."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (use --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if out.exists():
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
