"""Demo stage 1: encode a few frames of the shipped samples at four QPs (All Intra).

`run_encode_stage` is what `codecnn demo` calls first; later stages read the manifests it
returns. Small on purpose (by default 8 frames of carphone 176×144 and bikes scaled to
320×136, preset "faster"): about a minute on two shared cores.

`run_hevc_encode_stage` is what `codecnn demo --codec hevc` calls instead: the same samples
and QPs coded with x265 All Intra, each coded sequence carrying libde265's depth and QP
planes, so extraction, the depth-aware network and the QP/depth analyses run on real
partitions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.codec.codecs import get_codec
from codecnn.io.atomic import save_figure_atomic, write_text_atomic

DEMO_QPS = (22, 27, 32, 37)
# (sample, scale or None, name of the coded source)
DEMO_SOURCES = (("carphone_pristine", None, "carphone"), ("bikes", (320, 136), "bikes320"))


def plot_per_source(points: list[tuple[str, float, float]], path: Path, xlabel: str,
                    ylabel: str, title: str = "", logx: bool = False) -> Path:
    """One line per source through its (x, y) points, sorted by x; PNG written atomically.
    logx: a logarithmic x axis (bitrates of different sources differ a hundredfold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for source in dict.fromkeys(p[0] for p in points):
        pts = sorted((x, y) for s, x, y in points if s == source)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=source)
    ax.set_xlabel(xlabel)
    if logx:
        ax.set_xscale("log")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


def plot_rd(rows, path: Path, title: str = "") -> Path:
    """Rate-distortion curves (PSNR-Y over kbit/s) per source."""
    return plot_per_source([(r.source, r.kbps, r.psnr_y) for r in rows], path,
                           "bitrate (kbit/s, log scale)", "PSNR-Y (dB)", title, logx=True)


def run_encode_stage(out_dir: str | os.PathLike, frames: int = 8, qps=DEMO_QPS,
                     config: str = "ai", preset: str | None = None, jobs: int = 2,
                     ffmpeg: str | os.PathLike | None = None, echo=print, codec: str = "vvc",
                     sources=DEMO_SOURCES, subdir: str | None = None,
                     vtm_decoder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Encode the demo samples; say (echo) and return a table of bitrate and PSNR-Y per QP.

    sources: (sample name, scale (w, h) or None, coded name[, FFmpeg select expression over
    the sample's frame numbers]) tuples; preset None takes the
    codec's fastest ("faster" for VVenC, "medium" for x265). Writes
    OUT/<subdir or "coded">/<source>/... (see codecnn.codec.encode) and .../rd.{md,png}.
    Returns {"manifests": [manifest paths], "rows": [QpSummary], "table": markdown str}.
    Re-running replaces earlier demo outputs. vtm_decoder (VVC): VTM's CU depth and QP
    planes in every coded sequence (`codecnn.codec.vtm`).
    """
    from codecnn.codec.encode import encode_sequence, format_table, qp_dir, summarize
    from codecnn.codec.samples import find_sample

    preset = preset or get_codec(codec).default_preset
    coded = Path(out_dir) / (subdir or "coded")
    manifests, rows = [], []
    for sample, scale, name, *select in sources:
        _, _, path = find_sample(sample)
        seqs = encode_sequence(path, qps, config, frames, coded, codec=codec, preset=preset,
                               scale=scale, name=name, select=select[0] if select else None,
                               jobs=jobs, ffmpeg=ffmpeg, overwrite=True,
                               vtm_decoder=vtm_decoder)
        for s in seqs:
            manifests.append(qp_dir(coded, name, codec, config, s.qp) / "manifest.json")
            rows.append(summarize(s))
    table = format_table(rows)
    write_text_atomic(coded / "rd.md", table)
    qtxt = f"QP {min(qps)}-{max(qps)}" if len(qps) > 1 else f"QP {qps[0]}"
    encoder = {"vvc": "VVenC", "hevc": "x265"}.get(codec, codec)
    plot_rd(rows, coded / "rd.png", f"{encoder} {config.upper()}, {qtxt}, {frames} frames")
    echo(f"encode: {len(manifests)} coded sequences ({codec.upper()}, {encoder} preset "
         f"{preset}, {config.upper()}), {frames} frames each")
    echo(table)
    return {"manifests": manifests, "rows": rows, "table": table}


def depth_rows(manifests: list[Path]) -> list[dict[str, Any]]:
    """Per coded sequence: share of luma samples at each CU depth (0 = 64×64 .. 3 = 8×8)."""
    from codecnn.codec.manifest import load_manifest

    rows = []
    for m in manifests:
        seq = load_manifest(m)
        depth = np.fromfile(seq.depth_map, np.uint8)
        counts = np.bincount(depth, minlength=4)[:4]
        rows.append({"source": seq.source, "qp": seq.qp,
                     "share": (counts / max(depth.size, 1)).tolist(),
                     "mean_depth": float(depth.mean()) if depth.size else 0.0})
    return rows


def format_depth_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: share of samples per CU size and the mean depth, per source and QP."""
    lines = ["| source | QP | 64×64 | 32×32 | 16×16 | 8×8 | mean depth |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        shares = " | ".join(f"{100 * s:.1f}%" for s in r["share"])
        lines.append(f"| {r['source']} | {r['qp']} | {shares} | {r['mean_depth']:.2f} |")
    return "\n".join(lines)


def plot_depth(rows: list[dict[str, Any]], path: Path) -> Path:
    """Mean CU depth over QP per source."""
    return plot_per_source([(r["source"], r["qp"], r["mean_depth"]) for r in rows], path,
                           "QP", "mean CU depth (0 = 64×64, 3 = 8×8)",
                           "x265 All Intra: CU depth from libde265")


def run_hevc_encode_stage(out_dir: str | os.PathLike, frames: int = 8, qps=DEMO_QPS,
                          config: str = "ai", preset: str | None = None, jobs: int = 2,
                          ffmpeg: str | os.PathLike | None = None,
                          echo=print, sources=DEMO_SOURCES) -> dict[str, Any]:
    """Encode the demo samples with x265 (+ libde265 depth/QP maps); say and return tables.

    Writes OUT/coded_hevc/<source>/hevc-<config>/qp<QP>/{bitstream.265, rec.yuv, depth.raw, qp.raw,
    depth_qp.vtmbmsstats, manifest.json} and OUT/coded_hevc/{rd.md, rd.png, depth.md,
    depth.png}.
    Returns {"manifests": [manifest paths], "rows": [QpSummary], "table": markdown,
    "depth_rows": [{"source", "qp", "share" (per depth 0..3), "mean_depth"}],
    "depth_table": markdown}. Re-running replaces earlier outputs.
    """
    result = run_encode_stage(out_dir, frames, qps, config, preset, jobs, ffmpeg, echo,
                              codec="hevc", sources=sources, subdir="coded_hevc")
    coded = Path(out_dir) / "coded_hevc"
    drows = depth_rows(result["manifests"])
    dtable = format_depth_table(drows)
    write_text_atomic(coded / "depth.md", dtable)
    plot_depth(drows, coded / "depth.png")
    echo("CU depth from libde265 (share of luma samples per CU size):")
    echo(dtable)
    return {**result, "depth_rows": drows, "depth_table": dtable}
