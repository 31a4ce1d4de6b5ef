"""Tiny real training shards for the train tests: still images, really coded with VVenC.

Each "sequence" is a grey crop of a scikit-image photo, panned by a few pixels per frame,
encoded All Intra with FFmpeg's libvvenc at a fixed QP, decoded with FFmpeg's native VVC
decoder, and cut into 132×132 patches by codecnn.extract (10-bit, no depth).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

SOURCES = {"astronaut": (0, 128), "coffee": (100, 200), "chelsea": (0, 100)}


def _frames(name: str, width: int, height: int, frames: int) -> np.ndarray:
    from skimage import color, data

    img = getattr(data, name)()
    grey = color.rgb2gray(img) if img.ndim == 3 else img / 255.0
    y0, x0 = SOURCES[name]
    out = []
    for k in range(frames):
        crop = grey[y0: y0 + height, x0 + 3 * k: x0 + 3 * k + width]
        out.append(np.round(crop * 1023).astype("<u2"))
    return np.stack(out)


def _write_yuv(path: Path, frames: np.ndarray) -> None:
    h, w = frames.shape[1:]
    chroma = np.full((h // 2, w // 2), 512, "<u2").tobytes()
    with open(path, "wb") as f:
        for fr in frames:
            f.write(fr.tobytes() + chroma + chroma)


def code_vvc(src: Path, rec: Path, width: int, height: int, qp: int) -> None:
    """Encode a 10-bit 4:2:0 YUV with libvvenc (AI, fixed QP) and decode it back."""
    import imageio_ffmpeg

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    bits = rec.with_suffix(".266")
    subprocess.run([ff, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p10le",
                    "-s", f"{width}x{height}", "-r", "25", "-i", str(src), "-c:v", "libvvenc",
                    "-qp", str(qp), "-qpa", "0", "-preset", "faster", "-vvenc-params",
                    "IntraQPOffset=0:GOPQPA=0:BIM=0:IntraPeriod=1", str(bits)],
                   check=True, capture_output=True)
    subprocess.run([ff, "-y", "-loglevel", "error", "-i", str(bits), "-f", "rawvideo",
                    "-pix_fmt", "yuv420p10le", str(rec)], check=True, capture_output=True)


def _depth_map(frames: np.ndarray) -> np.ndarray:
    """A stand-in CU-depth plane (uint8 per pixel): deeper where an 8×8 block is busier, as
    a real partition tends to be. Enough for tests of the depth plane's plumbing."""
    n, h, w = frames.shape
    blocks = frames[:, : h // 8 * 8, : w // 8 * 8].reshape(n, h // 8, 8, w // 8, 8)
    busy = blocks.std(axis=(2, 4))
    depth = np.clip(np.round(busy / 16), 0, 4).astype(np.uint8)
    out = np.zeros((n, h, w), np.uint8)
    out[:, : h // 8 * 8, : w // 8 * 8] = depth.repeat(8, 1).repeat(8, 2)
    return out


def make_shards(out_dir: Path, sequences=("astronaut", "coffee"), qps=(37,), width: int = 256,
                height: int = 192, frames: int = 2, depth: bool = False) -> list[Path]:
    """One shard per (sequence, QP) in out_dir: frames × ceil(w/128)·ceil(h/128) patches;
    with `depth`, each also carries a stand-in depth plane (see _depth_map)."""
    from codecnn.extract.extraction import ExtractOptions, extract_yuv

    work = out_dir / "yuv"
    work.mkdir(parents=True, exist_ok=True)
    shards = []
    for name in sequences:
        src = work / f"{name}.yuv"
        pictures = _frames(name, width, height, frames)
        _write_yuv(src, pictures)
        depth_map = None
        if depth:
            depth_map = work / f"{name}_depth.u8"
            depth_map.write_bytes(_depth_map(pictures).tobytes())
        for qp in qps:
            rec = work / f"{name}_qp{qp}_rec.yuv"
            code_vvc(src, rec, width, height, qp)
            out = out_dir / f"{name}_qp{qp}.h5"
            extract_yuv(rec, src, out, size=(width, height), bit_depth=10, qp=qp,
                        sequence=name, depth_map=depth_map,
                        options=ExtractOptions(progress=False))
            shards.append(out)
    return shards
