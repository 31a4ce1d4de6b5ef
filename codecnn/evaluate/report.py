"""Writing an evaluation report: report.json, report.md and PNG plots, atomically.

The report directory is built under `.NAME.<pid>.tmp` next to its final place and renamed
when complete; an existing report is replaced only with overwrite=True.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from codecnn.io.atomic import atomic_dir
from codecnn.io.paths import relative_within

CONFIG_NOTES = {
    "ai": ("All Intra: no picture is predicted from another, so a filter applied after "
           "decoding gives exactly what it would give in the loop (exact for an always-on "
           "filter; with switching, up to the flag bits' real entropy coding)."),
    "ra": ("Random Access: the filter is applied after decoding, so later pictures were "
           "predicted from unfiltered references. In the loop they would be predicted from "
           "filtered ones; these numbers are an approximation of the in-loop result."),
}


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def _shown(path: str | None, where: Path) -> str | None:
    """A path as report.md shows it: relative to the report when it is close by."""
    return None if path is None else relative_within(path, where)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _plots(report: dict[str, Any], d: Path) -> list[str]:
    """Write the report's PNGs into d (figures from codecnn.evaluate.plots); their names."""
    from codecnn.evaluate.plots import ctu_gain_map_figure, gain_per_qp_figure, rd_figure
    from codecnn.io.atomic import save_figure_atomic

    made = []
    switch = report.get("switch")
    by_seq: dict[str, list[dict]] = {}
    for r in report.get("results", []):
        by_seq.setdefault(r["source"], []).append(r)
    for source, pts in sorted(by_seq.items()):
        name = f"rd_{_slug(source)}.png"
        save_figure_atomic(rd_figure(source, pts, switch), d / name, dpi=110)
        made.append(name)
    if report["summary"]["per_qp"]:
        save_figure_atomic(gain_per_qp_figure(report["summary"]["per_qp"], switch),
                           d / "gain_per_qp.png", dpi=110)
        made.append("gain_per_qp.png")
    if any(r.get("ctu_gain_map", {}).get("db") for r in report.get("results", [])):
        # the map with the widest spread of CTU gains (plots.pick_gain_map), named in its title
        save_figure_atomic(ctu_gain_map_figure(report["results"]), d / "ctu_gain_map.png",
                           dpi=110)
        made.append("ctu_gain_map.png")
    return made


def _markdown(report: dict[str, Any], plots: list[str], where: Path) -> str:
    """report.md; paths near the report (`where`) are shown relative to it."""
    m = report["model"]
    lines = ["# codecnn evaluation report", ""]
    lines += [f"Model **{m.get('name')}** from `{_shown(m.get('checkpoint'), where)}` "
              f"(step {m.get('step')}): "
              f"input planes {', '.join(m['planes'])}, border {m['border']}, "
              f"{m['params']:,} parameters, **{m['kmac_per_pixel']:.2f} kMAC/pixel**.", ""]
    if report.get("kind") == "shards":
        lines += _md_shards(report["summary"], report)
    else:
        lines += _md_summary(report["summary"], report) + _md_tables(report["summary"], report)
    lines += _md_block_stats(report, where)
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += _md_commands(report)
    return "\n".join(lines)


def _md_shards(s: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """The per-QP table of a report on shards."""
    lines = [f"Data: {len(report['shards'])} HDF5 shard(s); PSNR-Y per picture over the "
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
    return lines


def _md_summary(s: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """What the numbers of a report on coded sequences mean, and their overall averages."""
    switch = report.get("switch")
    configs = sorted({r["config"] for r in report["results"]})
    lines = ["## Configuration", ""]
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
    return lines


def _md_tables(s: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Per QP, per sequence (BD numbers), per sequence and QP."""
    switch = report.get("switch")
    lines = ["## Per QP (averaged over sequences)", ""]
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
    return lines


def _md_block_stats(report: dict[str, Any], where: Path) -> list[str]:
    """Where the YUView block-statistics files are, and how to open them."""
    switch = report.get("switch")
    stats = [r for r in report.get("results", []) if r.get("block_stats")]
    if not stats:
        return []
    lines = ["## Block statistics for YUView", "",
             "One VTM-style statistics file per sequence and QP. In YUView open the "
             "decoded video named below and the `.vtmbmsstats` file, select both, "
             "right-click and \"Add Overlay\". `CTU_gain_mdB` is 10·log10(SSE rec / "
             "SSE filtered) per CTU of every frame, in thousandths of a dB"
             + ("; `CTU_on` is 1 where the filter stays on after "
                f"{switch} switching." if switch else "."), ""]
    lines += [f"- `{r['block_stats']}` over `{_shown(r['reconstruction'], where)}` ({r['width']}x"
              f"{r['height']}, {r['bit_depth']}-bit 4:2:0)" for r in stats]
    lines.append("")
    return lines


def _md_commands(report: dict[str, Any]) -> list[str]:
    """The eval command line and the encoding/decoding commands from the manifests."""
    lines = ["## Commands", "", "```", " ".join(report.get("command") or []), "```", ""]
    enc = [(r["source"], r["qp"], r.get("commands") or {}) for r in report.get("results", [])]
    if any(c for *_, c in enc):
        # The FFmpeg binary is named once, not in every line.
        binaries = sorted({str(argv[0]) for *_, c in enc for argv in c.values() if argv})
        lines += ["Encoding/decoding commands (from the manifests; `ffmpeg` is "
                  + ", ".join(f"`{b}`" for b in binaries) + "):", ""]
        for source, qp, cmds in enc:
            for step, argv in cmds.items():
                shown = ["ffmpeg", *map(str, argv[1:])] if argv else []
                lines.append(f"- {source} QP{qp} {step}: `{' '.join(shown)}`")
        lines.append("")
    return lines


def write_block_stats_file(r: dict[str, Any], stats: dict[str, Any], d: Path) -> str:
    """`<source>_qp<QP>.vtmbmsstats` in `d`: per CTU of every frame (POC = frame index of
    the reconstruction) the gain in milli-dB and, when switching, the on flag. Returns the
    file name."""
    from codecnn.io.blockstats import StatType, write_block_stats
    from codecnn.io.grid import CtuGrid

    gain, on = stats["gain_mdb"], stats["on"]
    lim = max(1, int(abs(gain).max()))  # a colour range symmetric about 0 dB
    types = [StatType("CTU_gain_mdB", "Integer", (-lim, lim))]
    if on is not None:
        types.append(StatType("CTU_on", "Flag"))
    blocks = CtuGrid(r["width"], r["height"], stats["ctu"], border=0).positions()

    def pictures():
        for k in range(len(gain)):
            values = {"CTU_gain_mdB": gain[k].ravel()}
            if on is not None:
                values["CTU_on"] = on[k].ravel()
            yield k, blocks, values

    name = f"{_slug(r['source'])}_qp{r['qp']}.vtmbmsstats"
    write_block_stats(d / name, r["width"], r["height"], types, pictures(), comments=[
        f"codecnn eval: {r['source']} QP {r['qp']}, {stats['ctu']}x{stats['ctu']} CTUs; "
        "CTU_gain_mdB = 1000 * 10*log10(SSE rec / SSE filtered); POC = frame index"])
    return name


def write_report(report: dict[str, Any], out_dir: str | Path, overwrite: bool = False,
                 ctu_stats: list[dict[str, Any]] | None = None) -> Path:
    """Write report.json, report.md and the PNG plots into `out_dir` (atomically); with
    `ctu_stats` (one per result, see evaluate_sequence) also a YUView statistics file per
    result, named in the result's "block_stats"."""

    def write(d: Path) -> None:
        for r, stats in zip(report["results"] if ctu_stats else [], ctu_stats or [],
                            strict=True):
            r["block_stats"] = write_block_stats_file(r, stats, d)
        plots = _plots(report, d)
        report["plots"] = plots
        (d / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (d / "report.md").write_text(_markdown(report, plots, Path(out_dir)))

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
