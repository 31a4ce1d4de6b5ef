"""`codecnn dataset info`: what a shard or a directory of shards holds."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from codecnn.io import shard

# HDF5 filter ids of the compressions extract writes (h5py names only its built-in ones).
_FILTER_NAMES = {1: "gzip", 32000: "lzf", 32001: "blosc", 32015: "zstd", 32026: "blosc2"}


def _compression(ds) -> str:
    plist = ds.id.get_create_plist()
    names = []
    for i in range(plist.get_nfilters()):
        code, _flags, values, _name = plist.get_filter(i)
        name = _FILTER_NAMES.get(code, f"filter {code}")
        if code == 1 and values:
            name += f"-{values[0]}"
        if code == 32001 and len(values) >= 7:
            cnames = {0: "blosclz", 1: "lz4", 2: "lz4hc", 4: "zlib", 5: "zstd"}
            name = f"blosc/{cnames.get(values[6], values[6])}-{values[4]}"
        if code != 2:  # skip the plain shuffle filter
            names.append(name)
    return "+".join(names) or "none"


def dataset_info(paths: str | os.PathLike | list) -> dict[str, Any]:
    """Patches per nominal QP and per sequence, has_depth, bytes and compression of shards."""
    files = shard.shard_paths(paths)
    per_qp: Counter[int] = Counter()
    per_seq: Counter[str] = Counter()
    shards = []
    for p in files:
        with shard.open_shard(p) as f:
            attrs = shard.read_attrs(f)
            meta = shard.read_meta(f, p)
            qps, counts = np.unique(meta["nominal_qp"], return_counts=True)
            per_qp.update({int(q): int(n) for q, n in zip(qps, counts, strict=True)})
            names, counts = np.unique(meta["sequence"], return_counts=True)
            per_seq.update({shard.decode_name(s): int(n)
                            for s, n in zip(names, counts, strict=True)})
            cut = int(np.sum((meta["valid_w"] < attrs.get("ctu_size", 128))
                             | (meta["valid_h"] < attrs.get("ctu_size", 128))))
            shards.append({
                "path": str(p),
                "patches": int(len(meta)),
                "cut_ctus": cut,
                "bytes": p.stat().st_size,
                "has_depth": shard.DEPTH in f,
                "bit_depth": attrs.get("bit_depth"),
                "ctu_size": attrs.get("ctu_size"),
                "border": attrs.get("border"),
                "compression": _compression(f[shard.REC]),
            })
    return {
        "shards": shards,
        "patches": sum(s["patches"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "patches_per_qp": dict(sorted(per_qp.items())),
        "patches_per_sequence": dict(sorted(per_seq.items())),
        "has_depth": all(s["has_depth"] for s in shards),
        "compression": sorted({s["compression"] for s in shards}),
    }


def format_info(info: dict[str, Any]) -> str:
    """The info dict as the text `codecnn dataset info` prints."""
    lines = [
        f"shards: {len(info['shards'])}   patches: {info['patches']}   "
        f"bytes: {info['bytes']} ({info['bytes'] / 2**20:.1f} MiB)",
        f"has_depth: {info['has_depth']}   compression: {', '.join(info['compression'])}",
        *(["reading: Blosc needs `import hdf5plugin` before h5py opens a shard "
            "(codecnn.io.shard.open_shard does it)"]
          if any("blosc" in c for c in info["compression"]) else []),
        "patches per QP:",
        *(f"  QP {q}: {n}" for q, n in info["patches_per_qp"].items()),
        "patches per sequence:",
        *(f"  {s}: {n}" for s, n in info["patches_per_sequence"].items()),
    ]
    if len(info["shards"]) > 1:
        lines.append("shards:")
        for s in info["shards"]:
            lines.append(f"  {s['path']}: {s['patches']} patches ({s['cut_ctus']} cut), "
                         f"{s['bytes']} bytes, depth={s['has_depth']}, {s['compression']}")
    else:
        s = info["shards"][0]
        lines.append(f"bit depth {s['bit_depth']}, CTU {s['ctu_size']}, border {s['border']}, "
                     f"{s['cut_ctus']} cut CTUs")
    return "\n".join(lines)
