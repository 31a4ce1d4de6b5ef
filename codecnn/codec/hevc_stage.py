"""Demo stage 1 for HEVC: the shipped samples coded with x265, with real CU depth and QP maps.

`run_hevc_encode_stage` is what `codecnn demo --codec hevc` calls first: the same samples and
QPs as the VVC stage (`codecnn.codec.stage`), coded with x265 All Intra, each coded sequence
carrying libde265's depth and QP planes, so extraction, the depth-aware network and the
QP/depth analyses run on real partitions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.codec.stage import DEMO_QPS, DEMO_SOURCES, run_encode_stage
from codecnn.io.atomic import save_figure_atomic, write_text_atomic


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
    """Mean CU depth over QP per source (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for source in dict.fromkeys(r["source"] for r in rows):
        pts = sorted((r["qp"], r["mean_depth"]) for r in rows if r["source"] == source)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=source)
    ax.set_xlabel("QP")
    ax.set_ylabel("mean CU depth (0 = 64×64, 3 = 8×8)")
    ax.set_title("x265 All Intra: CU depth from libde265")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


def run_hevc_encode_stage(out_dir: str | os.PathLike, frames: int = 8, qps=DEMO_QPS,
                          config: str = "ai", preset: str | None = None, jobs: int = 2,
                          ffmpeg: str | os.PathLike | None = None,
                          echo=print, sources=DEMO_SOURCES) -> dict[str, Any]:
    """Encode the demo samples with x265 (+ libde265 depth/QP maps); print and return tables.

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
