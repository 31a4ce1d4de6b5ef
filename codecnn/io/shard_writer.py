"""Writes one HDF5 shard (schema: codecnn.io.shard) from a reconstruction, its original and
its side-info maps, under a temporary name that is renamed only when the shard is complete.

Chunks hold one patch each, so a Dataset reads a patch with one chunk decode. The default
compression is chosen by measurement (tools/bench_extract.py): see `DEFAULT_COMPRESSION`.

`CODECNN_TEST_SLOW_WRITE=SECONDS` (test-only) sleeps that long after each picture so a test
can kill a real extraction in the middle of writing; nothing else reads it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codecnn import __version__
from codecnn.errors import DataError
from codecnn.io import shard
from codecnn.io.atomic import atomic_output
from codecnn.io.grid import CtuGrid, CtuPosition
from codecnn.io.sideinfo import ConstantMap, SideMap
from codecnn.io.yuv import YuvReader

# Chosen by tools/bench_extract.py on 720p 10-bit VVC reconstructions: Blosc/LZ4 with
# bit-shuffle writes ~4× faster than Blosc/Zstd (so extraction stays well ahead of decoding),
# reads patches fastest of the compressed filters, and is only ~10 % larger than Blosc/Zstd.
DEFAULT_COMPRESSION = "blosc-lz4"
COMPRESSIONS = ("none", "lzf", "gzip-1", "blosc-zstd", "blosc-lz4")
SLOW_WRITE_ENV = "CODECNN_TEST_SLOW_WRITE"


def compression_kwargs(name: str) -> dict[str, Any]:
    """h5py create_dataset keyword arguments for a compression name of COMPRESSIONS."""
    if name == "none":
        return {}
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "gzip-1":
        return {"compression": "gzip", "compression_opts": 1}
    if name == "blosc-zstd":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.BITSHUFFLE))
    if name == "blosc-lz4":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE))
    raise DataError(f"unknown compression {name!r} (use {', '.join(COMPRESSIONS)})")


@dataclass
class ShardJob:
    """Everything one shard is made from; frame k of rec/orig is output picture k.

    rec/orig: readers of the same geometry and bit depth; pocs/slice_qps/slice_types: one
    entry per picture; qp_map: per-sample QP; depth_map: None when depth is unknown.
    """

    sequence: str
    nominal_qp: int
    rec: YuvReader
    orig: YuvReader
    pocs: list[int]
    slice_qps: list[int]
    slice_types: list[str]
    qp_map: SideMap
    depth_map: SideMap | None = None
    codec: str = "unknown"
    config: str = "unknown"
    source: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def check_sample_range(reader: YuvReader, luma: np.ndarray, k: int) -> None:
    """DataError when frame k holds samples above the file's bit depth: an 8-bit file read
    as 10-bit pairs its bytes into values up to 65,535."""
    top = int(luma.max()) if luma.size else 0
    if top > reader.format.peak:
        raise DataError(
            f"{reader.path}: frame {k} has sample value {top}, above "
            f"{reader.format.bit_depth}-bit (an 8-bit or big-endian file? check --bit-depth)")


def _shard_attrs(job: ShardJob, grid: CtuGrid, full_ctus_only: bool,
                 compression: str) -> dict[str, Any]:
    """The shard's root attributes; AssertionError where they drift from shard.ATTRS (the
    schema names every attribute a shard carries)."""
    attrs = {
        "format_version": shard.FORMAT_VERSION,
        "bit_depth": job.rec.format.bit_depth,
        "ctu_size": grid.ctu_size,
        "border": grid.border,
        "has_depth": job.depth_map is not None,
        "sequence": job.sequence,
        "nominal_qp": int(job.nominal_qp),
        "codec": job.codec,
        "config": job.config,
        "source": json.dumps(job.source, sort_keys=True),
        "settings": json.dumps(job.settings, sort_keys=True),
        "codecnn_version": __version__,
        "width": job.rec.format.width,
        "height": job.rec.format.height,
        "full_ctus_only": bool(full_ctus_only),
        "compression": compression,
    }
    if set(attrs) != set(shard.ATTRS):
        raise AssertionError(f"shard attributes {sorted(set(attrs) ^ set(shard.ATTRS))} "
                             "differ from codecnn.io.shard.ATTRS")
    return attrs


@dataclass(frozen=True)
class _Datasets:
    """The per-patch datasets of an open shard; depth is None when the job has no depth."""

    rec: Any
    orig: Any
    qp: Any
    depth: Any | None


def _create_datasets(f: Any, job: ShardJob, n: int, grid: CtuGrid,
                     comp: dict[str, Any]) -> _Datasets:
    """Create the n-patch datasets in `f` (an h5py.File), chunked one patch per chunk."""
    p, c = grid.patch_size, grid.ctu_size
    rec_ds = f.create_dataset(shard.REC, (n, p, p), np.uint16, chunks=(1, p, p), **comp)
    orig_ds = f.create_dataset(shard.ORIG, (n, c, c), np.uint16, chunks=(1, c, c), **comp)
    qp_ds = f.create_dataset(shard.QP, (n, p, p), np.uint8, chunks=(1, p, p), **comp)
    depth_ds = None
    if job.depth_map is not None:
        depth_ds = f.create_dataset(shard.DEPTH, (n, p, p), np.uint8, chunks=(1, p, p),
                                    **comp)
    return _Datasets(rec_ds, orig_ds, qp_ds, depth_ds)


def _write_picture(job: ShardJob, k: int, grid: CtuGrid, positions: list[CtuPosition],
                   ds: _Datasets, meta: np.ndarray, seq_name: bytes) -> None:
    """Cut picture k into its patches and write them and their rows of `meta`; DataError
    (before anything of the picture is written) for samples above the bit depth."""
    per_frame, p = len(positions), grid.patch_size
    rows = slice(k * per_frame, (k + 1) * per_frame)
    rec_luma, orig_luma = job.rec.luma(k), job.orig.luma(k)
    for reader, luma in ((job.rec, rec_luma), (job.orig, orig_luma)):
        check_sample_range(reader, luma, k)
    ds.rec[rows] = grid.cut(rec_luma, positions, dtype=np.uint16)
    ds.orig[rows] = grid.cut(orig_luma, positions, border=0, dtype=np.uint16)
    if isinstance(job.qp_map, ConstantMap):  # one QP per picture: no map to cut
        ds.qp[rows] = np.full((per_frame, p, p), job.qp_map.values[k], np.uint8)
    else:
        ds.qp[rows] = grid.cut(job.qp_map.frame(k), positions)
    if ds.depth is not None:
        ds.depth[rows] = grid.cut(job.depth_map.frame(k), positions)
    m = meta[rows]
    m["sequence"] = seq_name
    m["poc"] = job.pocs[k]
    m["ctu_x"] = [q.x for q in positions]
    m["ctu_y"] = [q.y for q in positions]
    m["slice_qp"] = job.slice_qps[k]
    m["nominal_qp"] = job.nominal_qp
    m["slice_type"] = job.slice_types[k].encode()
    m["valid_w"] = [q.valid_w for q in positions]
    m["valid_h"] = [q.valid_h for q in positions]


def write_shard(job: ShardJob, out_path: str | os.PathLike, grid: CtuGrid,
                full_ctus_only: bool = False, compression: str = DEFAULT_COMPRESSION,
                progress: bool = True) -> dict[str, Any]:
    """Cut every picture of `job` into patches and write the shard; returns a small summary.

    The caller decides about overwriting; this writes `out_path` atomically (os.replace).
    """
    import h5py
    from tqdm import tqdm

    out_path = Path(out_path)
    frames = len(job.rec)
    positions = grid.positions(full_ctus_only)
    n = frames * len(positions)
    comp = compression_kwargs(compression)
    slow = float(os.environ.get(SLOW_WRITE_ENV, "0") or 0)
    attrs = _shard_attrs(job, grid, full_ctus_only, compression)
    t0 = time.perf_counter()
    with atomic_output(out_path) as tmp:
        try:
            f = h5py.File(tmp, "w")
        except OSError as e:
            raise DataError(f"{out_path}: cannot write {tmp.name} ({e})") from None
        with f:
            for key, value in attrs.items():
                f.attrs[key] = value
            ds = _create_datasets(f, job, n, grid, comp)
            meta = np.zeros(n, shard.META_DTYPE)
            seq_name = job.sequence.encode("utf-8")[:64]
            bar = tqdm(range(frames), desc=f"extract {out_path.name}", unit="pic",
                       disable=None if progress else True)
            for k in bar:
                _write_picture(job, k, grid, positions, ds, meta, seq_name)
                if slow:
                    time.sleep(slow)
            f.create_dataset(shard.META, data=meta)
    seconds = time.perf_counter() - t0
    return {
        "path": str(out_path),
        "sequence": job.sequence,
        "nominal_qp": int(job.nominal_qp),
        "patches": n,
        "frames": frames,
        "has_depth": job.depth_map is not None,
        "seconds": seconds,
        "bytes": out_path.stat().st_size,
    }
