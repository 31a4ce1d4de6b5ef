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

from codecnn.codec.stage import DEMO_QPS, DEMO_SOURCES


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def run_hevc_encode_stage(out_dir: str | os.PathLike, frames: int = 8, qps=DEMO_QPS,
                          config: str = "ai", preset: str = "medium", jobs: int = 2,
                          ffmpeg: str | os.PathLike | None = None,
                          echo=print) -> dict[str, Any]:
    """Encode the demo samples with x265 (+ libde265 depth/QP maps); print and return tables.

    Writes OUT/coded_hevc/<source>/qp<QP>/{bitstream.265, rec.yuv, depth.raw, qp.raw,
    manifest.json} and OUT/coded_hevc/{rd.md, rd.png, depth.md, depth.png}.
    Returns {"manifests": [manifest paths], "rows": [QpSummary], "table": markdown,
    "depth_rows": [{"source", "qp", "share" (per depth 0..3), "mean_depth"}],
    "depth_table": markdown}. Re-running replaces earlier outputs.
    """
    from codecnn.codec.encode import encode_sequence, format_table, summarize
    from codecnn.codec.samples import find_sample
    from codecnn.codec.stage import plot_rd

    coded = Path(out_dir) / "coded_hevc"
    manifests, rows = [], []
    for sample, scale, name in DEMO_SOURCES:
        _, _, path = find_sample(sample)
        seqs = encode_sequence(path, qps, config, frames, coded, codec="hevc", preset=preset,
                               scale=scale, name=name, jobs=jobs, ffmpeg=ffmpeg,
                               overwrite=True)
        for s in seqs:
            manifests.append(coded / name / f"qp{s.qp}" / "manifest.json")
            rows.append(summarize(s))
    table = format_table(rows)
    _write(coded / "rd.md", table)
    plot_rd(rows, coded / "rd.png")
    drows = depth_rows(manifests)
    dtable = format_depth_table(drows)
    _write(coded / "depth.md", dtable)
    plot_depth(drows, coded / "depth.png")
    echo(f"Stage 1 (encode, HEVC): {len(manifests)} coded sequences, {frames} frames each, "
         f"{config.upper()}, x265 preset {preset}, depth and QP maps from libde265")
    echo(table)
    echo(dtable)
    return {"manifests": manifests, "rows": rows, "table": table, "depth_rows": drows,
            "depth_table": dtable}
