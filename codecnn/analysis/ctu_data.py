"""Per-CTU statistics read from HDF5 shards: residual MSE, slice QP, mean CU depth.

Reads the shard schema of `codecnn.io.shard` directly with h5py (no Dataset class), in
chunks, so memory stays flat whatever the data set size. Only the valid area of CTUs cut by
the right/bottom picture edge is scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codecnn.errors import DataError
from codecnn.io.shard import DEPTH, META, ORIG, REC, decode_name, open_shard, shard_paths

CHUNK = 256  # CTUs read per h5py call


@dataclass(frozen=True)
class CtuTable:
    """One row per CTU. mse is in squared sample units at `bit_depth` (10-bit: 0..1023²).

    mean_depth is None when any shard lacks depth (has_depth=False): never zeros.
    """

    mse: np.ndarray  # float64 [N]
    slice_qp: np.ndarray  # int64 [N]
    nominal_qp: np.ndarray  # int64 [N]
    mean_depth: np.ndarray | None  # float64 [N] or None
    sequence: np.ndarray  # str [N]
    bit_depth: int
    shards: tuple[str, ...]
    depth_missing_in: tuple[str, ...]  # shards without depth (empty when depth is present)

    @property
    def n(self) -> int:
        return int(self.mse.shape[0])

    @property
    def has_depth(self) -> bool:
        return self.mean_depth is not None


@dataclass(frozen=True)
class CtuChunk:
    """A chunk of CTUs of one shard: arrays as stored, plus the shard's geometry."""

    path: Path
    orig: np.ndarray  # uint16 [n, C, C]
    rec: np.ndarray  # uint16 [n, P, P] (P = C + 2·border)
    depth: np.ndarray | None  # uint8 [n, P, P] or None
    meta: np.ndarray  # META_DTYPE [n]
    border: int
    bit_depth: int


def iter_chunks(paths: str | os.PathLike | Sequence[str | os.PathLike],
                qps: Sequence[int] | None = None, *, with_depth: bool = True,
                progress: bool = True) -> Iterator[CtuChunk]:
    """Yield CtuChunks of every shard, keeping only CTUs whose nominal QP is in `qps`."""
    from tqdm import tqdm

    files = shard_paths(list(paths) if isinstance(paths, list | tuple) else paths)
    wanted = None if qps is None else np.asarray(sorted(set(qps)))
    # disable=None: progress on a terminal only, never mixed into a redirected error log
    bar = tqdm(total=len(files), desc="shards", unit="shard", disable=None if progress else True,
               leave=False)
    for path in files:
        with open_shard(path) as f:
            bit_depth = int(f.attrs["bit_depth"])
            border = int(f.attrs.get("border", 2))
            meta_all = f[META][...]
            keep = np.ones(len(meta_all), bool) if wanted is None else np.isin(
                meta_all["nominal_qp"].astype(np.int64), wanted)
            rows = np.flatnonzero(keep)
            has_depth = with_depth and DEPTH in f
            for start in range(0, len(rows), CHUNK):
                idx = rows[start : start + CHUNK]
                if idx[-1] - idx[0] < 2 * len(idx):  # dense: one contiguous read, then select
                    sl, sel = slice(int(idx[0]), int(idx[-1]) + 1), idx - idx[0]
                    read = lambda name, sl=sl, sel=sel: f[name][sl][sel]  # noqa: E731
                else:  # sparse: h5py point selection (sorted indices)
                    read = lambda name, idx=idx: f[name][idx.tolist()]  # noqa: E731
                yield CtuChunk(
                    path=path,
                    orig=read(ORIG),
                    rec=read(REC),
                    depth=read(DEPTH) if has_depth else None,
                    meta=meta_all[idx],
                    border=border,
                    bit_depth=bit_depth,
                )
        bar.update(1)
    bar.close()


def load_ctu_table(paths: str | os.PathLike | Sequence[str | os.PathLike],
                   qps: Sequence[int] | None = None, *, progress: bool = True,
                   require_depth: str | None = None) -> CtuTable:
    """Per-CTU residual MSE over the valid area, slice/nominal QP and mean CU depth.

    Raises DataError when the QP filter leaves no CTU, shards disagree on bit depth, or
    `require_depth` (the reason depth is needed) is given and a shard has no depth.
    """
    files = shard_paths(list(paths) if isinstance(paths, list | tuple) else paths)
    missing_depth, selected = [], 0
    for path in files:  # cheap first pass: fail before any heavy reading
        with open_shard(path) as f:
            if DEPTH not in f:
                missing_depth.append(str(path))
            nqp = f[META]["nominal_qp"].astype(np.int64)
            selected += int(nqp.size if qps is None else np.isin(nqp, list(qps)).sum())
    if require_depth and missing_depth:
        raise DataError(f"{missing_depth[0]}: no CU depth in the shard (has_depth=False); "
                        f"{require_depth}")
    if selected == 0:
        what = "" if qps is None else f" with nominal QP in {sorted(set(qps))}"
        where = files[0] if len(files) == 1 else f"{len(files)} shards in {files[0].parent}"
        raise DataError(f"{where}: no CTUs{what}")
    use_depth = not missing_depth
    mse, sqp, nqp, depth, seq, depths_seen = [], [], [], [], [], set()
    for ch in iter_chunks(files, qps, with_depth=use_depth, progress=progress):
        depths_seen.add(ch.bit_depth)
        b = ch.border
        c = ch.orig.shape[-1]
        res = ch.orig.astype(np.int64) - ch.rec[:, b : b + c, b : b + c].astype(np.int64)
        valid = _valid_mask(ch.meta, c)
        count = valid.sum(axis=(1, 2))
        mse.append(((res * res) * valid).sum(axis=(1, 2)) / count)
        sqp.append(ch.meta["slice_qp"].astype(np.int64))
        nqp.append(ch.meta["nominal_qp"].astype(np.int64))
        seq.extend(decode_name(s) for s in ch.meta["sequence"])
        if ch.depth is not None:
            d = ch.depth[:, b : b + c, b : b + c].astype(np.float64)
            depth.append((d * valid).sum(axis=(1, 2)) / count)
    if len(depths_seen) > 1:
        raise DataError(f"{files[0].parent}: shards mix bit depths {sorted(depths_seen)}")
    return CtuTable(
        mse=np.concatenate(mse),
        slice_qp=np.concatenate(sqp),
        nominal_qp=np.concatenate(nqp),
        mean_depth=np.concatenate(depth) if use_depth else None,
        sequence=np.asarray(seq),
        bit_depth=depths_seen.pop(),
        shards=tuple(str(p) for p in files),
        depth_missing_in=tuple(missing_depth),
    )


def _valid_mask(meta: np.ndarray, c: int) -> np.ndarray:
    """bool [n, C, C]: True inside the picture (valid_w × valid_h top-left area)."""
    vw = np.clip(meta["valid_w"].astype(np.int64), 1, c)
    vh = np.clip(meta["valid_h"].astype(np.int64), 1, c)
    ar = np.arange(c)
    return (ar[None, :, None] < vh[:, None, None]) & (ar[None, None, :] < vw[:, None, None])
