"""Demo stage 1: encode a few frames of two shipped samples at four QPs (All Intra).

`run_encode_stage` is what `codecnn demo` calls first; later stages read the manifests it
returns. Small on purpose (8 frames of carphone 176×144 and bikes scaled to 320×136,
preset "faster"): about a minute on two shared cores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from codecnn.codec.codecs import get_codec
from codecnn.io.atomic import save_figure_atomic, write_text_atomic

DEMO_QPS = (22, 27, 32, 37)
# (sample, scale or None, name of the coded source)
DEMO_SOURCES = (("carphone_pristine", None, "carphone"), ("bikes", (320, 136), "bikes320"))


def plot_rd(rows, path: Path, title: str = "") -> Path:
    """Rate-distortion curves (PSNR-Y over kbit/s) per source, saved as PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for source in dict.fromkeys(r.source for r in rows):
        pts = sorted((r.kbps, r.psnr_y) for r in rows if r.source == source)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=source)
    ax.set_xlabel("bitrate (kbit/s)")
    ax.set_ylabel("PSNR-Y (dB)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=100)


def run_encode_stage(out_dir: str | os.PathLike, frames: int = 8, qps=DEMO_QPS,
                     config: str = "ai", preset: str | None = None, jobs: int = 2,
                     ffmpeg: str | os.PathLike | None = None, echo=print, codec: str = "vvc",
                     sources=DEMO_SOURCES, subdir: str | None = None) -> dict[str, Any]:
    """Encode the demo samples; print and return a table of bitrate and PSNR-Y per QP.

    sources: (sample name, scale (w, h) or None, coded name[, FFmpeg select expression over
    the sample's frame numbers]) tuples; preset None takes the
    codec's fastest ("faster" for VVenC, "medium" for x265). Writes
    OUT/<subdir or "coded">/<source>/... (see codecnn.codec.encode) and .../rd.{md,png}.
    Returns {"manifests": [manifest paths], "rows": [QpSummary], "table": markdown str}.
    Re-running replaces earlier demo outputs.
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
                               jobs=jobs, ffmpeg=ffmpeg, overwrite=True)
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
