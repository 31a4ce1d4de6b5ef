"""Writing an evaluation report: report.json, report.md and PNG plots, atomically.

The report directory is built under `.NAME.<pid>.tmp` next to its final place and renamed
when complete; an existing report is replaced only with overwrite=True.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codecnn.errors import DataError
from codecnn.io.atomic import temporary_sibling

CONFIG_NOTES = {
    "ai": ("All Intra: no picture is predicted from another, so a filter applied after "
           "decoding gives exactly what it would give in the loop (exact for an always-on "
           "filter; with switching, up to the flag bits' real entropy coding)."),
    "ra": ("Random Access: the filter is applied after decoding, so later pictures were "
           "predicted from unfiltered references. In the loop they would be predicted from "
           "filtered ones; these numbers are an approximation of the in-loop result."),
}


def atomic_dir(out_dir: str | Path, write: Callable[[Path], None], overwrite: bool) -> Path:
    """Run `write(tmp_dir)` and rename tmp_dir to out_dir; DataError if out_dir exists."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists (use --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if out.exists():
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _plots(report: dict[str, Any], d: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    switch = report.get("switch")
    by_seq: dict[str, list[dict]] = {}
    for r in report.get("results", []):
        by_seq.setdefault(r["source"], []).append(r)
    for source, pts in sorted(by_seq.items()):
        pts = sorted(pts, key=lambda p: p["bitrate_kbps"])
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.plot([p["bitrate_kbps"] for p in pts], [p["psnr_rec"] for p in pts], "o-",
                label="anchor (VVC reconstruction)")
        ax.plot([p["bitrate_kbps"] for p in pts], [p["psnr_filt"] for p in pts], "s-",
                label="filtered (always on)")
        if switch:
            ax.plot([p["switch"]["bitrate_kbps"] for p in pts], [p["switch"]["psnr"] for p in pts],
                    "^--", label=f"filtered, {switch} switching")
        for p in pts:
            ax.annotate(f"QP{p['qp']}", (p["bitrate_kbps"], p["psnr_rec"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
        ax.set_xscale("log")
        ax.set_xlabel("bitrate (kbit/s)")
        ax.set_ylabel("luma PSNR (dB)")
        ax.set_title(f"RD curve: {source}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        name = f"rd_{_slug(source)}.png"
        fig.tight_layout()
        fig.savefig(d / name, dpi=110)
        plt.close(fig)
        made.append(name)
    per_qp = report["summary"]["per_qp"]
    if per_qp:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        qps = [r["qp"] for r in per_qp]
        width = 0.8 if not switch else 0.4
        xs = range(len(qps))
        ax.bar([x - (width / 2 if switch else 0) for x in xs], [r["gain"] for r in per_qp],
               width, label="always on")
        if switch:
            ax.bar([x + width / 2 for x in xs], [r["switch_gain"] for r in per_qp], width,
                   label=f"{switch} switching")
            ax.legend(fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(list(xs), [str(q) for q in qps])
        ax.set_xlabel("nominal QP")
        ax.set_ylabel("luma PSNR gain (dB)")
        ax.set_title("Luma PSNR gain per QP")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(d / "gain_per_qp.png", dpi=110)
        plt.close(fig)
        made.append("gain_per_qp.png")
    maps = [r for r in report.get("results", []) if r.get("ctu_gain_map", {}).get("db")]
    if maps:
        r = maps[len(maps) // 2]  # a middle QP of the first sequence: neither extreme
        import numpy as np

        g = np.asarray(r["ctu_gain_map"]["db"])
        lim = max(0.05, float(np.abs(g).max()))
        fig, ax = plt.subplots(figsize=(6, 6 * r["height"] / r["width"] + 0.8))
        ctu = r["ctu_gain_map"]["ctu"]
        luma = _luma(r)
        if luma is not None:  # the picture underneath, so gains can be read against content
            ax.imshow(luma, cmap="gray", extent=(0, r["width"], r["height"], 0))
        im = ax.imshow(g, cmap="RdBu", vmin=-lim, vmax=lim, alpha=0.55 if luma is not None
                       else 1.0, extent=(0, g.shape[1] * ctu, g.shape[0] * ctu, 0))
        for y in range(g.shape[0]):
            for x in range(g.shape[1]):
                if g.size <= 300:
                    cx = (x * ctu + min((x + 1) * ctu, r["width"])) / 2  # centre of the part
                    cy = (y * ctu + min((y + 1) * ctu, r["height"])) / 2  # inside the picture
                    ax.text(cx, cy, f"{g[y, x]:+.2f}", ha="center", va="center", fontsize=7)
        ax.set_xlim(0, r["width"])
        ax.set_ylim(r["height"], 0)
        fig.colorbar(im, ax=ax, label="gain (dB) = 10·log10(SSE rec / SSE filtered)")
        ax.set_title(f"per-CTU gain, {r['source']} QP{r['qp']} frame {r['ctu_gain_map']['frame']}",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(d / "ctu_gain_map.png", dpi=110)
        plt.close(fig)
        made.append("ctu_gain_map.png")
    return made


def _luma(r: dict[str, Any]):
    """Decoded luma of the gain map's frame, or None when the file is not readable."""
    try:
        from codecnn.io.yuv import YuvFormat, open_yuv

        fmt = YuvFormat(r["width"], r["height"], r["bit_depth"])
        return open_yuv(r["reconstruction"], fmt).luma(r["ctu_gain_map"]["frame"])
    except Exception:  # a plot without its background is still a plot
        return None


def _markdown(report: dict[str, Any], plots: list[str]) -> str:
    m = report["model"]
    s = report["summary"]
    switch = report.get("switch")
    lines = ["# codecnn evaluation report", ""]
    lines += [f"Model **{m.get('name')}** from `{m.get('checkpoint')}` (step {m.get('step')}): "
              f"input planes {', '.join(m['planes'])}, border {m['border']}, "
              f"{m['params']:,} parameters, **{m['kmac_per_pixel']:.2f} kMAC/pixel**.", ""]
    if report.get("kind") == "shards":
        lines += [f"Data: {len(report['shards'])} HDF5 shard(s); PSNR-Y per picture over the "
                  "CTUs stored in the shards (valid area only), averaged over pictures, then "
                  "sequences.", ""]
        lines += ["| QP | sequences | patches | PSNR-Y rec (dB) | PSNR-Y filtered (dB) "
                  "| gain (dB) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in s["per_qp"]:
            lines.append(f"| {r['qp']} | {r['sequences']} | {r['patches']} | "
                         f"{_fmt(r['psnr_rec'])} | {_fmt(r['psnr_filt'])} | "
                         f"{_fmt(r['gain'], '+.4f')} |")
        lines.append("")
    else:
        configs = sorted({r["config"] for r in report["results"]})
        lines += ["## Configuration", ""]
        for c in configs:
            lines.append(f"- {CONFIG_NOTES.get(c, f'Configuration {c!r}.')}")
        lines += ["- PSNR-Y per frame with peak (1 << bit depth) − 1, averaged over frames, "
                  "then over sequences; bitrate from the real bitstream size.",
                  "- BD-rate / BD-PSNR: Bjøntegaard with piecewise cubic (PCHIP) interpolation "
                  "as in the JVET CTC sheet; the classic cubic fit beside it.", ""]
        if switch:
            lines += [f"- Switching: {switch}-level on/off decided against the original, one "
                      f"flag bit per {'CTU' if switch == 'ctu' else 'picture'} added to the "
                      "bitrate.", ""]
        o = s["overall"]
        lines += ["## Summary", ""]
        lines.append(f"- Mean PSNR-Y gain, always on: **{_fmt(o['gain'], '+.4f')} dB**; "
                     f"BD-rate (PCHIP) **{_fmt(o.get('bd_rate_pchip'), '+.2f')} %**, "
                     f"BD-PSNR {_fmt(o.get('bd_psnr_pchip'), '+.4f')} dB "
                     f"(BD averaged over {len(o.get('bd_sequences', []))} sequence(s)).")
        if o.get("bd_excluded"):
            lines.append("- No BD numbers (fewer than 4 QPs or no overlapping range) for: "
                         + ", ".join(o["bd_excluded"]) + ".")
        if switch:
            lines.append(f"- With {switch} switching: gain **{_fmt(o['switch_gain'], '+.4f')} "
                         f"dB**; BD-rate **{_fmt(o.get('switch_bd_rate_pchip'), '+.2f')} %**, "
                         f"BD-PSNR {_fmt(o.get('switch_bd_psnr_pchip'), '+.4f')} dB; "
                         f"{100 * o['share_on']:.1f} % switched on.")
        lines.append("")
        lines += ["## Per QP (averaged over sequences)", ""]
        head = "| QP | sequences | kbit/s | PSNR-Y anchor | PSNR-Y filtered | gain (dB) |"
        sep = "|---:|---:|---:|---:|---:|---:|"
        if switch:
            head += " switched gain (dB) | on (%) |"
            sep += "---:|---:|"
        lines += [head, sep]
        for r in s["per_qp"]:
            row = (f"| {r['qp']} | {r['sequences']} | {_fmt(r['bitrate_kbps'], '.1f')} | "
                   f"{_fmt(r['psnr_rec'])} | {_fmt(r['psnr_filt'])} | {_fmt(r['gain'], '+.4f')} |")
            if switch:
                row += f" {_fmt(r['switch_gain'], '+.4f')} | {100 * r['share_on']:.1f} |"
            lines.append(row)
        lines += ["", "## Per sequence (BD vs the anchor, luma)", ""]
        head = ("| sequence | QPs | gain (dB) | BD-rate PCHIP (%) | BD-PSNR PCHIP (dB) | "
                "BD-rate cubic (%) |")
        sep = "|---|---|---:|---:|---:|---:|"
        if switch:
            head += " switched BD-rate (%) | switched BD-PSNR (dB) |"
            sep += "---:|---:|"
        lines += [head, sep]
        for name, e in s["sequences"].items():
            f = e["filtered"]
            row = (f"| {name} | {','.join(map(str, e['qps']))} | {_fmt(e['gain'], '+.4f')} | "
                   f"{_fmt(f['pchip']['bd_rate'], '+.2f')} | {_fmt(f['pchip']['bd_psnr'], '+.4f')}"
                   f" | {_fmt(f.get('cubic', {}).get('bd_rate'), '+.2f')} |")
            if switch:
                w = e["switched"]["pchip"]
                row += f" {_fmt(w['bd_rate'], '+.2f')} | {_fmt(w['bd_psnr'], '+.4f')} |"
            lines.append(row)
        lines += ["", "## Per sequence and QP", "",
                  "| sequence | QP | config | frames | kbit/s | PSNR-Y anchor | PSNR-Y filtered |"
                  " gain (dB) |", "|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in sorted(report["results"], key=lambda r: (r["source"], r["qp"])):
            lines.append(f"| {r['source']} | {r['qp']} | {r['config']} | {r['frames']} | "
                         f"{r['bitrate_kbps']:.1f} | {r['psnr_rec']:.3f} | {r['psnr_filt']:.3f} | "
                         f"{r['gain']:+.4f} |")
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += ["## Commands", "", "```", " ".join(report.get("command") or []), "```", ""]
    enc = [(r["source"], r["qp"], r.get("commands") or {}) for r in report.get("results", [])]
    if any(c for *_, c in enc):
        lines += ["Encoding/decoding commands (from the manifests):", ""]
        for source, qp, cmds in enc:
            for step, argv in cmds.items():
                lines.append(f"- {source} QP{qp} {step}: `{' '.join(map(str, argv))}`")
        lines.append("")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write report.json, report.md and the PNG plots into `out_dir` (atomically)."""

    def write(d: Path) -> None:
        plots = _plots(report, d)
        report["plots"] = plots
        (d / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (d / "report.md").write_text(_markdown(report, plots))

    return atomic_dir(out_dir, write, overwrite)


def per_qp_table(summary: dict[str, Any], switch: str | None = None) -> str:
    """The per-QP gain table as plain text for the terminal."""
    rows = summary["per_qp"]
    head = f"{'QP':>4} {'seqs':>4} {'PSNR rec':>9} {'PSNR filt':>9} {'gain dB':>8}"
    if switch:
        head += f" {'switched':>8} {'on %':>6}"
    out = [head]
    for r in rows:
        line = (f"{r['qp']:>4} {r['sequences']:>4} {_fmt(r['psnr_rec']):>9} "
                f"{_fmt(r['psnr_filt']):>9} {_fmt(r['gain'], '+.4f'):>8}")
        if switch:
            line += f" {_fmt(r['switch_gain'], '+.4f'):>8} {100 * r['share_on']:>6.1f}"
        out.append(line)
    return "\n".join(out)
