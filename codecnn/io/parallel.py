"""Running independent jobs (FFmpeg encodes) on a few threads, with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any


def map_threads(fn: Callable[[Any], Any], items: Iterable[Any], jobs: int, bar=None) -> list:
    """fn(item) for every item, `jobs` at a time; results in the items' order.

    The first error cancels what has not started and is raised; `bar` (tqdm) counts the
    finished items and is closed at the end.
    """
    items = list(items)
    results: list[Any] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
    return results
