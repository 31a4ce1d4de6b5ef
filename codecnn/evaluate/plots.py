"""The evaluation report's figures: RD curves with a ΔPSNR panel, gain per QP, a CTU gain map.

Each `*_figure` function takes report data (the dicts of `evaluate_sequence` / `summarise`)
and returns a matplotlib Figure, so tests can read its texts; `codecnn.evaluate.report`
saves them. Shared by all: numbers are labelled sign-aware (never "−0.00"; exactly zero
reads "0"; a missing value reads "n/a").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MINUS = "\u2212"  # the minus sign matplotlib's own tick labels use


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def format_gain(v: float | None, decimals: int = 2, max_decimals: int = 4) -> str:
    """A signed gain label: "+0.12", "−1.30", "0" for exactly zero, "n/a" when missing.

    A non-zero value that would round to zero gets more decimals (up to max_decimals), and
    below that reads "≈0", so no label ever shows a signed zero such as "−0.00".
    """
    if v is None or not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    for d in range(decimals, max_decimals + 1):
        s = f"{abs(v):.{d}f}"
        if float(s) != 0:
            return ("+" if v > 0 else MINUS) + s
    return "≈0"


def text_colour(rgb) -> str:
    """"white" on a dark background, "black" on a light one (relative luminance, sRGB)."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgb[:3])
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.18 else "black"


def codec_label(codec: str | None) -> str:
    """"HEVC (libx265)" / "VVC (libvvenc)" from a result's codec name."""
    if not codec:
        return "codec not recorded"
    from codecnn.codec.codecs import CODECS

    spec = CODECS.get(codec)
    return f"{codec.upper()} ({spec.encoder})" if spec else codec


def label_log_axis(axis) -> None:
    """Plain-number labels on a log axis, minor ticks labelled too when the range is short
    (the usual case for rate: less than two decades, where decades alone leave 0–1 label)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    decades = math.log10(hi / lo) if lo > 0 else 99
    if decades < 1:
        axis.set_minor_locator(LogLocator(subs=np.arange(2.0, 10.0)))
        # 7 and 9 of a decade sit too close to 8 and 10 for their labels: ticks only
        axis.set_minor_formatter(FuncFormatter(
            lambda v, _: "" if f"{v:g}"[0] in "79" else f"{v:g}"))
    elif decades < 2:
        axis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
        axis.set_minor_formatter(fmt)
    else:
        axis.set_minor_formatter(NullFormatter())


# --------------------------------------------------------------------------- RD curves

def rd_figure(source: str, pts: list[dict[str, Any]], switch: str | None = None):
    """PSNR-Y over rate (anchor, filtered, switched) and below it ΔPSNR-Y against the anchor.

    pts: `evaluate_sequence` results of one source (any order). The anchor is named by the
    results' codec; QP labels sit under the lower curve, inside the axes.
    """
    plt = pyplot()
    pts = sorted(pts, key=lambda p: p["bitrate_kbps"])
    codecs = sorted({p.get("codec") or "" for p in pts})
    anchor = " / ".join(codec_label(c or None) for c in codecs)
    configs = sorted({p.get("config") or "" for p in pts} - {""})
    rate = [p["bitrate_kbps"] for p in pts]
    rec = [p["psnr_rec"] for p in pts]
    filt = [p["psnr_filt"] for p in pts]
    fig, (ax, dax) = plt.subplots(2, 1, sharex=True, figsize=(5.8, 5.6), layout="constrained",
                                  gridspec_kw={"height_ratios": (2.2, 1)})
    ax.plot(rate, rec, "o-", color="C0", label=f"anchor: {anchor} reconstruction")
    ax.plot(rate, filt, "s--", color="C1", ms=5, label="filtered (always on)")
    dax.plot(rate, np.subtract(filt, rec), "s-", color="C1", ms=5)
    lows = [min(a, b) for a, b in zip(rec, filt, strict=True)]
    if switch:
        srate = [p["switch"]["bitrate_kbps"] for p in pts]
        spsnr = [p["switch"]["psnr"] for p in pts]
        ax.plot(srate, spsnr, "^:", color="C2", ms=5,
                label=f"filtered, {switch} switching (+ flag bits)")
        dax.plot(srate, np.subtract(spsnr, rec), "^-", color="C2", ms=5)
        lows = [min(a, b) for a, b in zip(lows, spsnr, strict=True)]
    ax.set_xscale("log")
    # room under the lowest curve for the QP labels, so none is cut by the frame
    ys = rec + filt + (spsnr if switch else [])
    span = max(max(ys) - min(ys), 0.5)
    ax.set_ylim(min(ys) - 0.16 * span, max(ys) + 0.08 * span)
    ax.set_xlim(min(rate) / 1.12, max(rate + (srate if switch else [])) * 1.12)
    for k, p in enumerate(pts):
        ha = "left" if k == 0 else "right" if k == len(pts) - 1 else "center"
        ax.annotate(f"QP {p['qp']}", (p["bitrate_kbps"], lows[k]), fontsize=7, ha=ha, va="top",
                    textcoords="offset points", xytext=(0, -6), color="0.25")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title(f"RD curve: {source}" + (f" ({', '.join(c.upper() for c in configs)})"
                                          if configs else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    dax.axhline(0, color="C0", lw=1)
    dax.set_ylabel("ΔPSNR-Y vs anchor\n(dB)", fontsize=9)
    dax.set_xlabel("bitrate (kbit/s)")
    dax.grid(True, which="both", alpha=0.3)
    label_log_axis(dax.xaxis)
    return fig


# --------------------------------------------------------------------------- gain per QP

def gain_per_qp_figure(per_qp: list[dict[str, Any]], switch: str | None = None):
    """Bars of the luma gain per nominal QP, each labelled with its value.

    A zero gain is drawn as a diamond on the zero line labelled "0"; a missing one (None or
    NaN) as a hatched outline labelled "n/a", so the two are never confused.
    """
    plt = pyplot()
    series = [("always on", "gain")]
    if switch:
        series.append((f"{switch} switching", "switch_gain"))
    qps = [r["qp"] for r in per_qp]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(5.8, 3.9), layout="constrained")
    values = [[r.get(key) for r in per_qp] for _, key in series]
    finite = [v for vs in values for v in vs if v is not None and math.isfinite(v)]
    top = max([0.0, *finite])
    bottom = min([0.0, *finite])
    span = max(top - bottom, 0.01)
    missing_drawn = False
    for j, ((label, _), vs) in enumerate(zip(series, values, strict=True)):
        colour = f"C{j}"
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(qps))]
        have = [(x, v) for x, v in zip(xs, vs, strict=True)
                if v is not None and math.isfinite(v)]
        ax.bar([x for x, _ in have], [v for _, v in have], width * 0.92, color=colour,
               label=label)
        for x, v in have:
            if v == 0:
                ax.plot(x, 0, "D", color=colour, mec="black", ms=7, zorder=3)
            up = v >= 0
            ax.annotate(format_gain(v, 3 if abs(v) < 1 else 2), (x, v), fontsize=7,
                        ha="center", va="bottom" if up else "top", textcoords="offset points",
                        xytext=(0, 5 if up else -5))
        for x, v in zip(xs, vs, strict=True):
            if v is None or not math.isfinite(v):
                ax.bar(x, span * 0.35, width * 0.92, bottom=-span * 0.175, fill=False,
                       hatch="///", edgecolor="0.6", lw=0.8,
                       label=None if missing_drawn else "no value (n/a)")
                missing_drawn = True
                ax.text(x, 0, "n/a", ha="center", va="center", fontsize=8, color="0.3",
                        bbox={"fc": "white", "ec": "none", "pad": 1})
    ax.set_ylim(bottom - 0.18 * span, top + 0.18 * span)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(qps)), [str(q) for q in qps])
    ax.set_xlabel("nominal QP")
    ax.set_ylabel("PSNR-Y gain (dB), filtered − anchor")
    ax.set_title("Luma PSNR gain per QP (mean over sequences)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if len(series) > 1 or missing_drawn:
        ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- CTU gain map

def pick_gain_map(results: list[dict[str, Any]],
                  choose: tuple[str, int] | None = None) -> tuple[dict[str, Any], str]:
    """The result whose CTU gain map to draw, and why it was picked (for the title).

    choose: (source, QP) to draw that one; None picks the map whose CTU gains spread the
    most (max − min): uniform maps say little. ValueError when `choose` names none.
    """
    maps = [r for r in results if r.get("ctu_gain_map", {}).get("db")]
    if not maps:
        raise ValueError("no result has a CTU gain map")
    if choose is not None:
        for r in maps:
            if (r["source"], int(r["qp"])) == (choose[0], int(choose[1])):
                return r, "as chosen"
        raise ValueError(f"no CTU gain map for {choose[0]} QP {choose[1]}")
    if len(maps) == 1:
        return maps[0], "the only map"

    def spread(r):
        g = np.asarray(r["ctu_gain_map"]["db"], dtype=np.float64)
        return float(g.max() - g.min())

    best = max(maps, key=spread)  # max keeps the first of equal spreads
    return best, f"widest CTU spread of {len(maps)} maps"


def ctu_gain_map_figure(results: list[dict[str, Any]], choose: tuple[str, int] | None = None,
                        luma: np.ndarray | None = None):
    """Per-CTU luma gain of one picture, over that picture's decoded luma when given.

    luma: [height, width] decoded luma of the map's frame at the result's bit depth (or None
    to read it from the result's reconstruction; the map is drawn alone if that fails).
    Labels are sign-aware; their colour follows the luminance under them.
    """
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    plt = pyplot()
    r, why = pick_gain_map(results, choose)
    g = np.asarray(r["ctu_gain_map"]["db"], dtype=np.float64)
    ctu = r["ctu_gain_map"]["ctu"]
    w, h = r["width"], r["height"]
    if luma is None:
        luma = _luma(r)
    lim = max(0.05, float(np.abs(g).max()))
    alpha = 0.55 if luma is not None else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 5.0 * h / w + 1.5))
    if luma is not None:  # the picture underneath, so gains can be read against content
        ax.imshow(luma, cmap="gray", vmin=0, vmax=(1 << r["bit_depth"]) - 1,
                  extent=(0, w, h, 0))
    im = ax.imshow(g, cmap="RdBu", vmin=-lim, vmax=lim, alpha=alpha,
                   extent=(0, g.shape[1] * ctu, g.shape[0] * ctu, 0))
    if g.size <= 300:
        peak = (1 << r["bit_depth"]) - 1
        for y in range(g.shape[0]):
            for x in range(g.shape[1]):
                x1, y1 = min((x + 1) * ctu, w), min((y + 1) * ctu, h)
                rgb = np.asarray(im.cmap(im.norm(g[y, x]))[:3])
                if luma is not None:  # what the eye sees: the colour blended over the picture
                    grey = float(np.mean(luma[y * ctu:y1, x * ctu:x1])) / peak
                    rgb = alpha * rgb + (1 - alpha) * grey
                ax.text((x * ctu + x1) / 2, (y * ctu + y1) / 2, format_gain(g[y, x]),
                        ha="center", va="center", fontsize=9 if g.size <= 48 else 7,
                        color=text_colour(rgb))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xlabel("x (luma samples)")
    ax.set_ylabel("y (luma samples)")
    cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.12)
    fig.colorbar(im, cax=cax, label="gain (dB) = 10·log10(SSE rec / SSE filtered)")
    ax.set_title(f"Per-CTU luma gain: {r['source']} QP {r['qp']} "
                 f"({str(r.get('config', '')).upper()}), frame {r['ctu_gain_map']['frame']}\n"
                 f"{ctu}×{ctu} CTUs; {why}", fontsize=9)
    fig.tight_layout()
    return fig


def _luma(r: dict[str, Any]):
    """Decoded luma of the gain map's frame, or None when the file is not readable."""
    try:
        from codecnn.io.yuv import YuvFormat, open_yuv

        fmt = YuvFormat(r["width"], r["height"], r["bit_depth"])
        return np.asarray(open_yuv(r["reconstruction"], fmt).luma(r["ctu_gain_map"]["frame"]))
    except Exception:  # a plot without its background is still a plot
        return None
