"""Evaluation of coded sequences (manifests): filter, score, switch, per frame and sequence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.codec.manifest import CodedSequence, load_manifest
from codecnn.codec.manifest_maps import open_sequence_map, picture_qp
from codecnn.errors import DataError
from codecnn.evaluate.switching import ctu_gain_db, switch_picture
from codecnn.evaluate.tiling import TiledFilter
from codecnn.io.metrics import PsnrAccumulator, mse_to_psnr, sse
from codecnn.io.yuv import YuvFormat, open_yuv


def expand_manifests(paths: list[str | Path]) -> list[Path]:
    """Manifest files, a directory standing for every manifest.json below it (as `encode`
    writes them: DIR/<source>/<codec>-<config>/qp<QP>/manifest.json)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("manifest.json"))
            if not found:
                raise DataError(f"{p}: directory holds no manifest.json")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise DataError("no manifests given")
    return out


def load_manifests(paths: list[str | Path]) -> list[CodedSequence]:
    """Manifests with their files checked; DataError on a missing file or a duplicate point."""
    seqs, seen = [], {}
    for p in paths:
        seq = load_manifest(p, check_files=True)
        key = (seq.source, seq.qp)
        if key in seen:
            raise DataError(f"{p}: {seq.source} at QP {seq.qp} already given by {seen[key]}")
        seen[key] = p
        seqs.append(seq)
    return seqs


def _open_pair(seq: CodedSequence, where: str):
    fmt = YuvFormat(seq.width, seq.height, seq.bit_depth, seq.chroma)
    orig, rec = open_yuv(seq.original, fmt), open_yuv(seq.reconstruction, fmt)
    for name, r in (("original", orig), ("reconstruction", rec)):
        if len(r) < seq.frames:
            raise DataError(f"{where}: {name} {r.path} has {len(r)} frames of "
                            f"{seq.width}x{seq.height}, manifest says {seq.frames}")
    return orig, rec


def evaluate_sequence(tf: TiledFilter, seq: CodedSequence, switch: str | None,
                      where: str = "manifest", ctu_map_frame: int = 0,
                      progress: bool = True) -> dict[str, Any]:
    """Scores one coded sequence at one QP.

    Returns a dict with the anchor (reconstruction), the always-on filter and, when `switch`
    is "ctu" or "frame", the switched filter: mean PSNR-Y over frames, bitrate (kbit/s, flag
    bits added for switching), per-frame rows, and the per-CTU gain map of frame
    `ctu_map_frame` (dB, 10·log10(SSE_rec / SSE_filtered) per CTU). Under "ctu_stats", not
    JSON: every frame's per-CTU gain in milli-dB (int32 [frames, rows, cols]) and, when
    switching, whether the filter is on there (bool, same shape), for the YUView file.
    """
    from tqdm import tqdm

    if seq.bit_depth != tf.bit_depth:
        raise DataError(f"{where}: sequence is {seq.bit_depth}-bit, filter set up for "
                        f"{tf.bit_depth}-bit")
    orig, rec = _open_pair(seq, where)
    qp_map = open_sequence_map(seq, "qp", where) if seq.qp_map and "qp" in tf.planes else None
    depth_map = None
    if "depth" in tf.planes:
        if not seq.depth_map:
            raise DataError(f"{where}: model uses the depth plane but {seq.source} has no "
                            "depth map")
        depth_map = open_sequence_map(seq, "depth", where)
    versions = ("rec", "filt", "switch") if switch else ("rec", "filt")
    acc = PsnrAccumulator(seq.bit_depth, versions)
    frames: list[dict[str, Any]] = []
    gain_map, flag_bits = None, 0
    gains_mdb, ons = [], []
    bar = tqdm(range(seq.frames), desc=f"{seq.source} qp{seq.qp}", unit="frame",
               file=sys.stderr, disable=None if progress else True, leave=False)
    for k in bar:
        o, r = np.asarray(orig.luma(k)), np.asarray(rec.luma(k))
        qp = qp_map.frame(k) if qp_map is not None else picture_qp(seq, k)
        depth = depth_map.frame(k) if depth_map is not None else None
        f = tf.filter(r, qp, depth, where=where)
        sw = switch_picture(o, r, f, switch or "none", tf.ctu)
        errors = {"rec": sse(o, r), "filt": sse(o, f)}
        if switch:
            errors["switch"] = sse(o, sw.picture)
        acc.add(seq.source, seq.qp, k, r.size, **errors)
        frames.append(_frame_row(seq, k, errors, r.size, sw, switch))
        flag_bits += sw.flag_bits
        g = ctu_gain_db(sw.sse_rec, sw.sse_filt)
        gains_mdb.append(np.rint(1000 * g).astype(np.int32))
        ons.append(sw.on)
        if k == ctu_map_frame:
            gain_map = g.round(4).tolist()
    (scores,) = acc.sequence_rows()
    out: dict[str, Any] = {
        "source": seq.source, "qp": seq.qp, "config": seq.config, "codec": seq.codec,
        "width": seq.width, "height": seq.height, "bit_depth": seq.bit_depth,
        "frames": seq.frames, "fps": seq.fps,
        "original": seq.original, "reconstruction": seq.reconstruction,
        "bitstream": seq.bitstream, "bitstream_bits": seq.bitstream_bits,
        "bitrate_kbps": seq.bitrate_kbps,
        "psnr_rec": scores["psnr_rec"], "psnr_filt": scores["psnr_filt"],
        "ctu_gain_map": {"frame": ctu_map_frame, "ctu": tf.ctu, "db": gain_map},
        "per_frame": frames,
        "ctu_stats": {"ctu": tf.ctu, "gain_mdb": np.stack(gains_mdb),
                      "on": np.stack(ons) if switch else None},
        "commands": seq.commands, "versions": seq.versions,
    }
    out["gain"] = out["psnr_filt"] - out["psnr_rec"]
    if switch:
        out["switch"] = _switch_summary(seq, switch, frames, flag_bits, scores["psnr_switch"],
                                        out["psnr_rec"])
    return out


def _frame_row(seq: CodedSequence, k: int, errors: dict[str, float], samples: int,
               sw, switch: str | None) -> dict[str, Any]:
    """One picture's row of per_frame: POC, slice type and QP, PSNR-Y of each version and,
    when switching, how many of its CTUs keep the filter."""
    row = {
        "poc": seq.pictures[k].poc if k < len(seq.pictures) else k,
        "slice_type": seq.pictures[k].slice_type if k < len(seq.pictures) else None,
        "slice_qp": picture_qp(seq, k),
        "psnr_rec": mse_to_psnr(errors["rec"] / samples, seq.bit_depth),
        "psnr_filt": mse_to_psnr(errors["filt"] / samples, seq.bit_depth),
    }
    if switch:
        row["psnr_switch"] = mse_to_psnr(errors["switch"] / samples, seq.bit_depth)
        row["ctus_on"] = int(sw.on.sum()) if switch == "ctu" else int(sw.on.all())
        row["ctus_total"] = int(sw.on.size) if switch == "ctu" else 1
    return row


def _switch_summary(seq: CodedSequence, switch: str, frames: list[dict[str, Any]],
                    flag_bits: int, psnr_switch: float, psnr_rec: float) -> dict[str, Any]:
    """The switched filter of one sequence: PSNR-Y, gain, rate with its flag bits, CTUs on."""
    on = sum(r["ctus_on"] for r in frames)
    total = sum(r["ctus_total"] for r in frames)
    return {
        "mode": switch,
        "psnr": psnr_switch,
        "gain": psnr_switch - psnr_rec,
        "flag_bits": flag_bits,
        "bitrate_kbps": (seq.bitstream_bits + flag_bits) * seq.fps / seq.frames / 1000.0,
        "on": on,
        "total": total,
        "share_on": on / total if total else 0.0,
    }
