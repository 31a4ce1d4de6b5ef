"""Extraction entry points: one reconstruction (`extract_yuv`) or many manifests
(`extract_manifests`, one shard each, in parallel). They return what they wrote and print
nothing (the demo's stage, codecnn.demo.stages, says it).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.codec.manifest import CodedSequence, load_manifest
from codecnn.codec.manifest_maps import open_sequence_map, sequence_pictures
from codecnn.errors import DataError
from codecnn.io.atomic import new_directory, remove_stale_temporaries
from codecnn.io.grid import CtuGrid
from codecnn.io.shard import open_shard, read_attrs
from codecnn.io.shard_writer import (
    DEFAULT_COMPRESSION,
    ShardJob,
    check_sample_range,
    compression_kwargs,
    write_shard,
)
from codecnn.io.sideinfo import ConstantMap, SideMap, open_map, parse_map_format
from codecnn.io.yuv import YuvReader, parse_yuv_name, resolve_format


@dataclass(frozen=True)
class ExtractOptions:
    """How patches are cut and stored (the same for every shard of one run)."""

    ctu_size: int = 128
    border: int = 2
    full_ctus_only: bool = False
    compression: str = DEFAULT_COMPRESSION
    overwrite: bool = False
    progress: bool = True


def shard_name(sequence: str, qp: int) -> str:
    """`<sequence>_qp<QP>.h5`, the one shard of a (sequence, nominal QP)."""
    return f"{sequence}_qp{qp}.h5"


def _file_info(path: str | os.PathLike | None) -> dict[str, Any] | None:
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _same_inputs(stored: dict[str, Any] | None, seq_files: dict[str, Any]) -> bool:
    """Whether a shard was cut from these very files (path, size and modification time)."""
    if not isinstance(stored, dict):
        return False
    return all(stored.get(k) == v for k, v in seq_files.items())


def _check_pair(rec: YuvReader, orig: YuvReader) -> None:
    rf, of = rec.format, orig.format
    if (rf.width, rf.height) != (of.width, of.height):
        raise DataError(
            f"{rec.path}: reconstruction is {rf.width}x{rf.height} but original {orig.path} is "
            f"{of.width}x{of.height}"
        )
    if rf.bit_depth != of.bit_depth:
        raise DataError(
            f"{rec.path}: reconstruction is {rf.bit_depth}-bit but original {orig.path} is "
            f"{of.bit_depth}-bit"
        )
    if len(rec) != len(orig):
        raise DataError(
            f"{rec.path}: reconstruction has {len(rec)} frames but original {orig.path} has "
            f"{len(orig)}"
        )


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise DataError(f"{out}: output exists (use --overwrite to replace it)")
    parent = out.parent
    if not parent.is_dir():
        raise DataError(f"{parent}: output directory does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{parent}: output directory is not writable")


def _sequence_name(orig_path: Path) -> str:
    """The original's file stem; in an encode folder (OUT/<source>/original.yuv), <source>."""
    if orig_path.stem == "original" and orig_path.parent.name:
        return orig_path.resolve().parent.name
    return orig_path.stem


def _settings(options: ExtractOptions, qp_fmt, depth_fmt, extra: dict | None = None) -> dict:
    out = dict(extra or {})
    out["extract"] = {
        "ctu_size": options.ctu_size,
        "border": options.border,
        "full_ctus_only": options.full_ctus_only,
        "compression": options.compression,
        "qp_map_format": qp_fmt,
        "depth_map_format": depth_fmt,
    }
    return out


def extract_yuv(
    rec_path: str | os.PathLike,
    orig_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    bit_depth: int | None = None,
    qp: int | None = None,
    qp_map: str | os.PathLike | None = None,
    qp_map_format: dict[str, Any] | str | None = None,
    depth_map: str | os.PathLike | None = None,
    depth_map_format: dict[str, Any] | str | None = None,
    sequence: str | None = None,
    options: ExtractOptions | None = None,
) -> dict[str, Any]:
    """One shard from a reconstruction and its original (raw YUV, same format).

    Give either `qp` (every picture coded at that QP: slice QP = QP, slice type "I") or a
    `qp_map` file; then each picture's slice QP is its map's most common value and the nominal
    QP the most common slice QP.
    Size/bit depth come from the arguments or the file names (codecnn.io.yuv.resolve_format).
    """
    options = options or ExtractOptions()
    out = Path(out_path)
    if (qp is None) == (qp_map is None):
        raise DataError("give exactly one of --qp Q and --qp-map FILE")
    width, height = size if size else (None, None)
    for p in (rec_path, orig_path):
        if bit_depth is None and parse_yuv_name(p).bit_depth is None:
            # An 8-bit guess would read a 10-bit file as twice as many pictures, silently.
            raise DataError(f"{p}: unknown bit depth; give --bit-depth 8|10 or a name like "
                            "Foo_1920x1080_10bit.yuv")
    rec = YuvReader(rec_path, resolve_format(rec_path, width, height, bit_depth))
    orig = YuvReader(orig_path, resolve_format(orig_path, width, height, bit_depth))
    _check_pair(rec, orig)
    for reader in (rec, orig):  # the first picture tells a wrong --bit-depth at once
        check_sample_range(reader, reader.luma(0), 0)
    _check_output(out, options.overwrite)
    compression_kwargs(options.compression)
    fmt = rec.format
    frames = len(rec)
    pocs = list(range(frames))
    if isinstance(qp_map_format, str) or (qp_map is not None and qp_map_format is None):
        qp_map_format = parse_map_format(qp_map_format, qp_map, fmt.bit_depth)
    if depth_map is not None and (isinstance(depth_map_format, str) or depth_map_format is None):
        depth_map_format = parse_map_format(depth_map_format, depth_map, fmt.bit_depth)
    if qp is not None:
        qmap: SideMap = ConstantMap([qp] * frames, fmt.width, fmt.height, "qp")
        nominal = qp
    else:
        qmap = open_map(qp_map, qp_map_format, "qp", fmt.width, fmt.height, pocs, fmt.bit_depth)
    # Without slice headers, a picture's QP is its map's most common value.
    slice_qps = [qp] * frames if qp is not None else [
        int(np.bincount(qmap.frame(k).ravel()).argmax()) for k in range(frames)]
    if qp is None:
        nominal = Counter(slice_qps).most_common(1)[0][0]
    dmap = None
    if depth_map is not None:
        dmap = open_map(depth_map, depth_map_format, "depth", fmt.width, fmt.height, pocs,
                        fmt.bit_depth)
    job = ShardJob(
        sequence=sequence or _sequence_name(Path(orig_path)),
        nominal_qp=int(nominal),
        rec=rec,
        orig=orig,
        pocs=pocs,
        slice_qps=slice_qps,
        slice_types=["I"] * frames,
        qp_map=qmap,
        depth_map=dmap,
        source={"reconstruction": _file_info(rec_path), "original": _file_info(orig_path),
                "qp_map": _file_info(qp_map), "depth_map": _file_info(depth_map)},
        settings=_settings(options, qp_map_format, depth_map_format),
    )
    grid = CtuGrid(fmt.width, fmt.height, options.ctu_size, options.border)
    remove_stale_temporaries(out.parent, out.name)
    return write_shard(job, out, grid, options.full_ctus_only, options.compression,
                       options.progress)


def _job_from_manifest(path: Path, seq: CodedSequence, options: ExtractOptions) -> ShardJob:
    rec = YuvReader(seq.reconstruction,
                    resolve_format(seq.reconstruction, seq.width, seq.height, seq.bit_depth,
                                   seq.chroma))
    orig = YuvReader(seq.original,
                     resolve_format(seq.original, seq.width, seq.height, seq.bit_depth,
                                    seq.chroma))
    _check_pair(rec, orig)
    frames = len(rec)
    if seq.frames != frames:
        raise DataError(f"{path}: manifest says {seq.frames} frames, {rec.path} has {frames}")
    pics = sequence_pictures(seq, str(path), frames)
    pocs, slice_qps, types = pics.pocs, pics.slice_qps, pics.slice_types
    qmap = open_sequence_map(seq, "qp", str(path), pics)
    dmap = open_sequence_map(seq, "depth", str(path), pics)
    return ShardJob(
        sequence=seq.source,
        nominal_qp=seq.qp,
        rec=rec,
        orig=orig,
        pocs=pocs,
        slice_qps=slice_qps,
        slice_types=types,
        qp_map=qmap,
        depth_map=dmap,
        codec=seq.codec,
        config=seq.config,
        source={"manifest": _file_info(path), "reconstruction": _file_info(seq.reconstruction),
                "original": _file_info(seq.original), "bitstream": seq.bitstream,
                "bitstream_bits": seq.bitstream_bits, "qp_map": _file_info(seq.qp_map),
                "depth_map": _file_info(seq.depth_map)},
        settings=_settings(options, seq.qp_map_format, seq.depth_map_format,
                           {"encoder": seq.encoder_settings, "versions": seq.versions}),
    )


def _complete_shard(out: Path, options: ExtractOptions,
                    inputs: dict[str, Any] | None = None) -> bool:
    """True when `out` is a complete shard made with the same cutting options from the same
    input files (a rerun skips it).

    Only complete shards ever carry the final name. A shard cut differently is an error unless
    --overwrite, so a rerun never silently mixes grids. A shard cut from older versions of its
    manifest's files (the sequence was encoded again) is stale: it is redone.
    """
    if not out.exists():
        return False
    if options.overwrite:
        return False
    with open_shard(out) as f:
        attrs = read_attrs(f)
    if inputs is not None and not _same_inputs(attrs.get("source"), inputs):
        return False
    got = (attrs.get("ctu_size"), attrs.get("border"), bool(attrs.get("full_ctus_only", False)))
    want = (options.ctu_size, options.border, options.full_ctus_only)
    if got != want:
        raise DataError(
            f"{out}: existing shard was cut with ctu_size/border/full_ctus_only {got}, this run "
            f"asks for {want} (use --overwrite to replace it)"
        )
    return True


def extract_manifest(manifest: str | os.PathLike, out_dir: str | os.PathLike,
                     options: ExtractOptions | None = None) -> dict[str, Any]:
    """The shard `OUT_DIR/<source>_qp<QP>.h5` of one manifest; skipped when already complete."""
    options = options or ExtractOptions()
    path = Path(manifest)
    seq = load_manifest(path)
    out = Path(out_dir) / shard_name(seq.source, seq.qp)
    inputs = {"manifest": _file_info(path), "reconstruction": _file_info(seq.reconstruction),
              "original": _file_info(seq.original)}
    if _complete_shard(out, options, inputs):
        return {"path": str(out), "sequence": seq.source, "nominal_qp": seq.qp, "skipped": True,
                "patches": _rows(out)}
    _check_output(out, True)
    job = _job_from_manifest(path, seq, options)
    grid = CtuGrid(seq.width, seq.height, options.ctu_size, options.border)
    remove_stale_temporaries(out.parent, out.name)
    summary = write_shard(job, out, grid, options.full_ctus_only, options.compression,
                          options.progress)
    summary["skipped"] = False
    return summary


def _rows(path: Path) -> int:
    with open_shard(path) as f:
        return int(f["meta"].shape[0])


def extract_manifests(manifests: list[str | os.PathLike], out_dir: str | os.PathLike,
                      options: ExtractOptions | None = None, jobs: int = 1) -> list[dict]:
    """One shard per manifest into `out_dir` (created), `jobs` processes at a time.

    Two manifests mapping to the same shard name are an error before anything is written.
    """
    options = options or ExtractOptions()
    if not manifests:
        raise DataError("no manifests given")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    names: dict[str, str] = {}
    for m in manifests:  # every input checked (files too) before anything is created
        seq = load_manifest(m)
        name = shard_name(seq.source, seq.qp)
        if name in names:
            raise DataError(f"{m}: same sequence and QP as {names[name]} (both give {name}); "
                            "extract each codec/configuration into its own -o folder")
        names[name] = str(m)
    with new_directory(out):  # a failure before the first shard leaves no empty directory
        if not os.access(out, os.W_OK | os.X_OK):
            raise DataError(f"{out}: output directory is not writable")
        if jobs <= 1 or len(manifests) == 1:
            return [extract_manifest(m, out, options) for m in manifests]
        quiet = dataclasses.replace(options, progress=False)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(extract_manifest, m, out, quiet) for m in manifests]
            return [f.result() for f in futures]
