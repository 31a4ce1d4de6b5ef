"""A torch Dataset over HDF5 shards (codecnn.io.shard) and a train/validation split by sequence.

Normalisation (the one place it is defined; models and evaluation undo it the same way):
    input  float32 [len(planes), P, P]: rec / peak, qp / 63, depth / 8   (peak = 2**bit_depth - 1)
    target float32 [1, C, C]:  (orig - rec[b:-b, b:-b]) / peak, the residual the network predicts
    valid  float32 [1, C, C]:  1 inside the picture, 0 where a right/bottom CTU is cut off
P = ctu_size + 2·border (132), C = ctu_size (128). Depth / 8 keeps typical VVC depths (0..8)
in [0, 1]; deeper values (up to 12) stay finite.

h5py handles are opened lazily in the process that reads (never inherited across fork), so a
DataLoader with several workers works.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

import numpy as np

from codecnn.errors import DataError
from codecnn.io import shard

PLANES = ("rec", "qp", "depth")
QP_SCALE = 63.0
DEPTH_SCALE = 8.0


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes (k = 0 is the identity)."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        a = a[..., ::-1]
    return a


class ShardDataset:
    """Patches of one or many shards, optionally filtered by nominal QP and by sequence.

    Args:
        paths: a shard, a directory of shards, or a list of either.
        planes: input planes from ("rec", "qp", "depth"); default every plane the shards have.
        qps: keep only patches whose nominal QP is in this set.
        sequences: keep only patches of these sequence names.
        augment: apply one random dihedral transform (torch RNG) to input, target and valid.
        full_ctus_only: skip CTUs cut by the right/bottom picture edge.
        in_memory: read each shard whole into memory on first use (decompressed once; the
            training corpus of the shipped models is about 1.3 GB) instead of per patch.

    Attributes: planes, bit_depth, peak, ctu_size, border, has_depth, paths, meta
    (META_DTYPE rows of the selected patches), sequences (sorted names present).
    """

    def __init__(self, paths: str | os.PathLike | list, planes: Iterable[str] | None = None,
                 qps: Iterable[int] | None = None, sequences: Iterable[str] | None = None,
                 augment: bool = False, full_ctus_only: bool = False,
                 in_memory: bool = False) -> None:
        self.paths = shard.shard_paths(paths)
        self.augment = augment
        self.in_memory = in_memory
        infos = []
        for p in self.paths:
            with shard.open_shard(p) as f:
                attrs = shard.read_attrs(f)
                meta = shard.read_meta(f, p)
                infos.append((p, attrs, meta, shard.DEPTH in f))
        first = infos[0]
        for key in ("bit_depth", "ctu_size", "border"):
            for p, attrs, _, _ in infos:
                if attrs.get(key) != first[1].get(key):
                    raise DataError(
                        f"{p}: {key} {attrs.get(key)} differs from {first[0]} "
                        f"({first[1].get(key)}); all shards of a dataset must agree"
                    )
        self.bit_depth = int(first[1]["bit_depth"])
        self.peak = float((1 << self.bit_depth) - 1)
        self.ctu_size = int(first[1].get("ctu_size", 128))
        self.border = int(first[1].get("border", 2))
        self.has_depth = all(has for *_, has in infos)
        if planes is None:
            planes = PLANES if self.has_depth else ("rec", "qp")
        self.planes = tuple(planes)
        for name in self.planes:
            if name not in PLANES:
                raise DataError(f"unknown plane {name!r} (use {', '.join(PLANES)})")
        if "depth" in self.planes:
            lacking = [p for p, *_, has in infos if not has]
            if lacking:
                raise DataError(f"{lacking[0]}: shard has no depth plane (has_depth=False)")

        qset = None if qps is None else {int(q) for q in qps}
        sset = None if sequences is None else {str(s) for s in sequences}
        shard_idx, rows, metas = [], [], []
        for i, (_, _, meta, _) in enumerate(infos):
            keep = np.ones(len(meta), bool)
            if qset is not None:
                keep &= np.isin(meta["nominal_qp"].astype(int), list(qset))
            if sset is not None:
                names = np.array([shard.decode_name(s) for s in meta["sequence"]])
                keep &= np.isin(names, list(sset))
            if full_ctus_only:
                keep &= (meta["valid_w"] == self.ctu_size) & (meta["valid_h"] == self.ctu_size)
            idx = np.nonzero(keep)[0]
            shard_idx.append(np.full(len(idx), i, np.int32))
            rows.append(idx.astype(np.int64))
            metas.append(meta[idx])
        self._shard = np.concatenate(shard_idx)
        self._row = np.concatenate(rows)
        self.meta = np.concatenate(metas)
        if len(self._row) == 0:
            raise DataError(
                f"{self.paths[0]}{' …' if len(self.paths) > 1 else ''}: no patches match "
                f"(qps={sorted(qset) if qset else None}, sequences="
                f"{sorted(sset) if sset else None}, full_ctus_only={full_ctus_only})"
            )
        self.sequences = sorted({shard.decode_name(s) for s in self.meta["sequence"]})
        self._files: dict[int, Any] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self._row)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None
        return state

    def _file(self, i: int):
        # h5py handles must not cross a fork: reopen in each process (DataLoader worker).
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        datasets = self._files.get(i)
        if datasets is None:
            f = shard.open_shard(self.paths[i])
            # Looking a dataset up by name costs as much as reading a patch: do it once.
            datasets = {name: f[name] for name in ("rec", "orig", *self.planes) if name in f}
            if self.in_memory:
                datasets = {name: d[()] for name, d in datasets.items()}
                f.close()
            datasets["_file"] = f
            self._files[i] = datasets
        return datasets

    def read_raw(self, index: int) -> dict[str, np.ndarray]:
        """The stored arrays of patch `index`: rec/qp/depth [P, P], orig [C, C] (uint, unscaled)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} patches")
        si, row = int(self._shard[index]), int(self._row[index])
        datasets = self._file(si)
        try:
            return {name: datasets[name][row] for name in ("rec", "orig", *self.planes)}
        except OSError as e:
            raise DataError(f"{self.paths[si]}: cannot read patch {row} ({e})") from None

    def __getitem__(self, index: int | tuple[int, int, int, int, int]) -> dict[str, Any]:
        """Patch `index` (whole CTU), or a training draw (index, k, y, x, size): the
        size×size window at (y, x) of the CTU (with its border), then dihedral transform k.
        Without a draw, `augment` picks k from torch's RNG."""
        import torch

        if isinstance(index, tuple):
            index, k, y, x, size = (int(v) for v in index)
        else:
            k = int(torch.randint(8, (1,)).item()) if self.augment else 0
            y = x = size = 0
        raw = self.read_raw(index)
        m = self.meta[index]
        b, c = self.border, self.ctu_size
        size = size or c
        rec = raw["rec"][y:y + size + 2 * b, x:x + size + 2 * b].astype(np.float32)
        scale = {"rec": self.peak, "qp": QP_SCALE, "depth": DEPTH_SCALE}
        x_in = np.stack([rec if n == "rec" else
                         raw[n][y:y + size + 2 * b, x:x + size + 2 * b].astype(np.float32)
                         for n in self.planes])
        x_in /= np.array([scale[n] for n in self.planes], np.float32)[:, None, None]
        orig = raw["orig"][y:y + size, x:x + size].astype(np.float32)
        target = (orig - rec[b:b + size, b:b + size]) / self.peak
        valid = np.zeros((size, size), np.float32)
        valid[:max(0, int(m["valid_h"]) - y), :max(0, int(m["valid_w"]) - x)] = 1.0
        target, valid = target[None], valid[None]
        if k:
            x_in, target, valid = _dihedral(x_in, k), _dihedral(target, k), _dihedral(valid, k)
        return {
            "input": torch.from_numpy(np.ascontiguousarray(x_in)),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "valid": torch.from_numpy(np.ascontiguousarray(valid)),
            "nominal_qp": int(m["nominal_qp"]),
            "slice_qp": int(m["slice_qp"]),
            "poc": int(m["poc"]),
            "sequence": shard.decode_name(m["sequence"]),
        }

    def close(self) -> None:
        for datasets in self._files.values():
            if datasets["_file"]:
                datasets["_file"].close()
        self._files = {}


def list_sequences(paths: str | os.PathLike | list) -> list[str]:
    """Sorted sequence names found in the shards' meta."""
    names: set[str] = set()
    for p in shard.shard_paths(paths):
        with shard.open_shard(p) as f:
            names |= {shard.decode_name(s) for s in np.unique(f[shard.META]["sequence"])}
    return sorted(names)


def split_by_sequence(paths: str | os.PathLike | list, val_sequences: Iterable[str] | None = None,
                      val_fraction: float = 0.2, seed: int = 0,
                      **kw: Any) -> tuple[ShardDataset, ShardDataset]:
    """Train and validation datasets that share no sequence (never a split by patch).

    With `val_sequences` those are validation; otherwise round(val_fraction · n) sequences
    (at least 1, at most n - 1), drawn with `seed`. Needs at least two sequences.
    `kw` goes to both ShardDatasets (planes, qps, augment, full_ctus_only); augmentation is
    applied to the training part only.
    """
    paths = shard.shard_paths(paths)
    names = list_sequences(paths)
    if val_sequences is not None:
        val = sorted(set(val_sequences))
        unknown = [s for s in val if s not in names]
        if unknown:
            raise DataError(f"{paths[0]}: validation sequence {unknown[0]!r} is in no shard "
                            f"(have {', '.join(names)})")
    else:
        if len(names) < 2:
            raise DataError(f"{paths[0]}: a split by sequence needs at least 2 sequences, the "
                            f"shards hold {len(names)} ({', '.join(names)})")
        n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
        val = sorted(random.Random(seed).sample(names, n_val))
    train = [s for s in names if s not in val]
    if not train:
        raise DataError(f"{paths[0]}: every sequence is a validation sequence; none left to train")
    augment = kw.pop("augment", False)
    return (ShardDataset(paths, sequences=train, augment=augment, **kw),
            ShardDataset(paths, sequences=val, augment=False, **kw))
