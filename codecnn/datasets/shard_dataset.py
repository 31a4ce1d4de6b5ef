"""A torch Dataset over HDF5 shards (codecnn.io.shard) and a train/validation split by sequence.

What a network sees (the planes and their scaling are codecnn.io.shard's PLANES and
`normalise`, which filtering uses too):
    input  float32 [len(planes), P, P]: rec / peak, qp / 63, depth / 8   (peak = 2**bit_depth - 1)
    target float32 [1, C, C]:  (orig - rec[b:-b, b:-b]) / peak, the residual the network predicts
    valid  float32 [1, C, C]:  1 inside the picture, 0 where a right/bottom CTU is cut off
P = ctu_size + 2·border (132), C = ctu_size (128).

The training and validation loaders ship the stored integers instead (`ShardDataset.packed`:
rec and orig uint16, qp/depth uint8, the valid rectangle as 4 integers: about a quarter of the
float32 bytes), and `model_inputs` normalises and masks a batch of them on the device. The
float item (`ds[i]`) is the same function applied to one packed item on the CPU.

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
from codecnn.io.shard import PLANES, normalise


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes (k = 0 is the identity)."""
    a = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        a = a[..., ::-1]
    return a


def model_inputs(batch: dict[str, Any], planes: Iterable[str], peak: float, border: int,
                 device: Any, channels_last: bool = False):
    """(input, target, valid), float32 on `device`, from a batch of packed items.

    batch: "rec" uint16 [B, 1, P, P], "side" uint8 [B, K - 1, P, P], "orig" uint16
    [B, 1, S, S], "valid" int64 [B, 4] (see ShardDataset.packed); P = S + 2·border.
    Returns input [B, K, P, P] (rec / peak, qp / 63, depth / 8 in `planes` order), target
    [B, 1, S, S] = (orig − rec centre) / peak and valid [B, 1, S, S] (1 inside the
    rectangle). Divisions by a tensor, not a Python number (see `normalise`).
    """
    import torch

    rec = batch["rec"].to(device, non_blocking=True)
    side = batch["side"].to(device, non_blocking=True)
    orig = batch["orig"].to(device, non_blocking=True)
    box = batch["valid"].to(device, non_blocking=True)
    planes = tuple(planes)
    chans, j = [], 0
    for name in planes:
        if name == "rec":
            chans.append(rec.float())
        else:
            chans.append(side[:, j:j + 1].float())
            j += 1
    x = normalise(torch.cat(chans, 1), planes, peak)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    s = orig.shape[-1]
    centre = rec[..., border:border + s, border:border + s]
    # The residual in units of the peak, divided by a tensor as `normalise` divides rec.
    target = (orig.int() - centre.int()).float() / torch.full((), peak, device=rec.device)
    i = torch.arange(s, device=rec.device)
    rows = (i >= box[:, 0:1]) & (i < box[:, 1:2])  # [B, S]
    cols = (i >= box[:, 2:3]) & (i < box[:, 3:4])
    valid = (rows[:, :, None] & cols[:, None, :]).unsqueeze(1).float()
    return x, target, valid


class PackedPatches:
    """Patches of a ShardDataset (all, or those at `indices`) as packed items: what the
    training and validation DataLoaders read (`model_inputs` turns a batch into floats)."""

    def __init__(self, ds: ShardDataset, indices: Iterable[int] | None = None) -> None:
        self.ds = ds
        self.indices = None if indices is None else [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.ds) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int | tuple) -> dict[str, Any]:
        if self.indices is not None and not isinstance(i, tuple):
            i = self.indices[i]
        return self.ds.packed(i)


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
        self._stored = tuple(dict.fromkeys(("rec", "orig", *self.planes)))  # rec once
        self._frames: tuple[list[tuple[str, int, int]], np.ndarray] | None = None

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
            datasets = {name: f[name] for name in self._stored if name in f}
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
            return {name: datasets[name][row] for name in self._stored}
        except OSError as e:
            raise DataError(f"{self.paths[si]}: cannot read patch {row} ({e})") from None

    def __getitem__(self, index: int | tuple[int, int, int, int, int]) -> dict[str, Any]:
        """Patch `index` (whole CTU), or a training draw (index, k, y, x, size): the
        size×size window at (y, x) of the CTU (with its border), then dihedral transform k.
        Without a draw, `augment` picks k from torch's RNG. Float32 input, target and valid
        as the module docstring defines them (`model_inputs` of the packed item)."""
        item = self.packed(index)
        one = {k: item[k][None] for k in ("rec", "side", "orig", "valid")}
        x, target, valid = model_inputs(one, self.planes, self.peak, self.border, "cpu")
        return {"input": x[0], "target": target[0], "valid": valid[0],
                **{k: item[k] for k in ("nominal_qp", "slice_qp", "poc", "sequence")}}

    def packed(self, index: int | tuple[int, int, int, int, int]) -> dict[str, Any]:
        """Patch `index` or a training draw (as `__getitem__`) as the stored integers:

            rec   uint16 [1, S + 2b, S + 2b]   side  uint8 [len(planes) - 1, S + 2b, S + 2b]
            orig  uint16 [1, S, S]             valid int64 [4]: y0, y1, x0, x1 of the valid
                                               rectangle (samples inside the picture)
        (side: the planes other than rec, in `planes` order; S: the CTU or the crop), plus
        nominal_qp, slice_qp, poc, sequence and index (of the patch in this dataset).
        """
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
        win = (slice(y, y + size + 2 * b), slice(x, x + size + 2 * b))
        rec = raw["rec"][win][None]
        names = [n for n in self.planes if n != "rec"]
        side = (np.stack([raw[n][win] for n in names]) if names
                else np.zeros((0, size + 2 * b, size + 2 * b), np.uint8))
        orig = raw["orig"][y:y + size, x:x + size][None]
        mask = np.zeros((size, size), bool)
        mask[:max(0, int(m["valid_h"]) - y), :max(0, int(m["valid_w"]) - x)] = True
        if k:
            rec, side, orig = _dihedral(rec, k), _dihedral(side, k), _dihedral(orig, k)
            mask = _dihedral(mask, k)
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        box = ([rows[0], rows[-1] + 1, cols[0], cols[-1] + 1] if len(rows) else [0, 0, 0, 0])
        return {
            "rec": torch.from_numpy(np.ascontiguousarray(rec, np.uint16)),
            "side": torch.from_numpy(np.ascontiguousarray(side, np.uint8)),
            "orig": torch.from_numpy(np.ascontiguousarray(orig, np.uint16)),
            "valid": torch.tensor(box, dtype=torch.int64),
            "nominal_qp": int(m["nominal_qp"]),
            "slice_qp": int(m["slice_qp"]),
            "poc": int(m["poc"]),
            "sequence": shard.decode_name(m["sequence"]),
            "index": int(index),
        }

    def frames(self) -> tuple[list[tuple[str, int, int]], np.ndarray]:
        """(the pictures (sequence, nominal QP, POC) the patches come from, sorted; the
        picture of each patch as an index into that list)."""
        if self._frames is None:
            names = [shard.decode_name(s) for s in self.meta["sequence"]]
            keys = list(zip(names, self.meta["nominal_qp"].astype(int).tolist(),
                            self.meta["poc"].astype(int).tolist(), strict=True))
            unique = sorted(set(keys))
            pos = {key: i for i, key in enumerate(unique)}
            self._frames = unique, np.array([pos[key] for key in keys], np.int64)
        return self._frames

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
