"""Raw planar YUV files: 8/10-bit, 4:2:0 and 4:0:0, memory-mapped frame access.

The frame layout (plane shapes, bytes per frame) is computed in exactly one place,
`YuvFormat.plane_shapes`; everything else derives from it. Chroma of odd sizes follows the
usual ceil rule: a 451×300 4:2:0 picture has 226×150 chroma planes.

Samples are returned as they are stored: uint8 for 8-bit, uint16 (0..1023, little-endian on
disk) for 10-bit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codecnn.errors import YuvFormatError
from codecnn.io.atomic import temporary_sibling

CHROMA_FORMATS = ("420", "400")
BIT_DEPTHS = (8, 10)


@dataclass(frozen=True)
class YuvFormat:
    """Geometry and sample format of a raw YUV sequence.

    Args:
        width, height: luma size in samples (any positive size; odd sizes allowed).
        bit_depth: 8 (uint8 samples) or 10 (little-endian uint16 holding 0..1023).
        chroma: "420" (Y, U, V with ceil(w/2)×ceil(h/2) chroma) or "400" (Y only).
    """

    width: int
    height: int
    bit_depth: int = 8
    chroma: str = "420"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise YuvFormatError(f"YUV size must be positive, got {self.width}x{self.height}")
        if self.bit_depth not in BIT_DEPTHS:
            raise YuvFormatError(f"bit depth must be 8 or 10, got {self.bit_depth}")
        if self.chroma not in CHROMA_FORMATS:
            raise YuvFormatError(f"chroma format must be 420 or 400, got {self.chroma!r}")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype("<u2")

    @property
    def peak(self) -> int:
        """Largest sample value, (1 << bit_depth) - 1."""
        return (1 << self.bit_depth) - 1

    @property
    def plane_shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, cols) of each plane in storage order: the one place the layout is defined."""
        luma = (self.height, self.width)
        if self.chroma == "400":
            return (luma,)
        chroma = ((self.height + 1) // 2, (self.width + 1) // 2)
        return (luma, chroma, chroma)

    @property
    def frame_samples(self) -> int:
        return sum(r * c for r, c in self.plane_shapes)

    @property
    def frame_bytes(self) -> int:
        return self.frame_samples * self.dtype.itemsize

    @property
    def pix_fmt(self) -> str:
        """FFmpeg's name for this layout (for -pix_fmt / -f rawvideo)."""
        base = "gray" if self.chroma == "400" else "yuv420p"
        if self.bit_depth == 8:
            return base
        return base + "10le"

    def num_frames(self, nbytes: int, path: str | os.PathLike | None = None) -> int:
        """Frames in a file of `nbytes`; a partial frame is an error naming the frame size."""
        frames, rest = divmod(nbytes, self.frame_bytes)
        if rest:
            where = f"{path}: " if path is not None else ""
            raise YuvFormatError(
                f"{where}size {nbytes} bytes is not a whole number of frames of "
                f"{self.frame_bytes} bytes ({self.width}x{self.height} {self.bit_depth}-bit "
                f"{self.chroma}); {rest} bytes left over"
            )
        return frames


_SIZE_RE = re.compile(r"(?<![0-9])(\d{2,5})x(\d{2,5})(?![0-9])")
_BITS_RE = re.compile(r"(?<![0-9])(8|10)[-_]?bits?(?![a-z])|p(10)le|p(10)(?![0-9])",
                      re.IGNORECASE)
# Never next to a digit or an 'x', so a picture dimension (640x400) is not read as 4:0:0.
_CHROMA_RE = re.compile(r"(?<![0-9x])(?:p|yuv)?(420|400)(?![0-9x])", re.IGNORECASE)
_FPS_RE = re.compile(r"(?<![0-9])(\d+(?:\.\d+)?)(?:fps|hz)(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedName:
    """What a sequence file name says about its format; None where it says nothing."""

    width: int | None
    height: int | None
    bit_depth: int | None
    chroma: str | None
    fps: float | None


def parse_yuv_name(path: str | os.PathLike) -> ParsedName:
    """Parse names such as `BasketballDrive_1920x1080_50fps_10bit_420.yuv`.

    Also understands CompressAI-style `_832x480_30Hz_8bit_P420` and `gray`/`400` for 4:0:0.
    """
    name = Path(path).name
    width = height = bit_depth = fps = None
    chroma = None
    if m := _SIZE_RE.search(name):
        width, height = int(m.group(1)), int(m.group(2))
        name = name[: m.start()] + "_" + name[m.end():]  # the rest says format, not size
    if m := _BITS_RE.search(name):
        bit_depth = int(next(g for g in m.groups() if g))
    if m := _CHROMA_RE.search(name):
        chroma = m.group(1)
    elif re.search(r"(?<![a-z])gray(?![a-z])", name, re.IGNORECASE):
        chroma = "400"
    if m := _FPS_RE.search(name):
        fps = float(m.group(1))
    return ParsedName(width, height, bit_depth, chroma, fps)


def resolve_format(
    path: str | os.PathLike,
    width: int | None = None,
    height: int | None = None,
    bit_depth: int | None = None,
    chroma: str | None = None,
) -> YuvFormat:
    """Format of a raw YUV file from explicit values, falling back to its name.

    Bit depth defaults to 8 and chroma to 4:2:0 when neither flag nor name gives them; the
    size has no default: an unknown size is an error naming the file.
    """
    parsed = parse_yuv_name(path)
    width = width or parsed.width
    height = height or parsed.height
    if not width or not height:
        raise YuvFormatError(
            f"{path}: unknown picture size; give --size WxH or a name like Foo_1920x1080_10bit.yuv"
        )
    return YuvFormat(width, height, bit_depth or parsed.bit_depth or 8, chroma or parsed.chroma
                     or "420")


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' → (1920, 1080)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise YuvFormatError(f"size must look like 1920x1080, got {text!r}")
    return int(m.group(1)), int(m.group(2))


class YuvReader:
    """Memory-mapped read access to a raw YUV file; frames are read lazily.

    `reader.luma(k)` is a read-only view [H, W] of frame k's luma; `reader.planes(k)` returns
    every plane. Nothing is copied until the caller copies.
    """

    def __init__(self, path: str | os.PathLike, fmt: YuvFormat) -> None:
        self.path = Path(path)
        self.format = fmt
        if not self.path.is_file():
            raise YuvFormatError(f"{self.path}: no such file")
        nbytes = self.path.stat().st_size
        self.num_frames = fmt.num_frames(nbytes, self.path)
        if self.num_frames == 0:
            raise YuvFormatError(f"{self.path}: file is empty (0 frames)")
        self._mm = np.memmap(
            self.path, dtype=fmt.dtype, mode="r", shape=(self.num_frames, fmt.frame_samples)
        )

    def __len__(self) -> int:
        return self.num_frames

    def _check(self, k: int) -> int:
        if not -self.num_frames <= k < self.num_frames:
            raise IndexError(f"{self.path}: frame {k} out of range (0..{self.num_frames - 1})")
        return k % self.num_frames

    def planes(self, k: int) -> tuple[np.ndarray, ...]:
        """All planes of frame k (Y, or Y U V), as views into the memory map."""
        row = self._mm[self._check(k)]
        out, start = [], 0
        for rows, cols in self.format.plane_shapes:
            out.append(row[start : start + rows * cols].reshape(rows, cols))
            start += rows * cols
        return tuple(out)

    def luma(self, k: int) -> np.ndarray:
        """Luma plane [H, W] of frame k (uint8 or uint16), a view."""
        rows, cols = self.format.plane_shapes[0]
        return self._mm[self._check(k), : rows * cols].reshape(rows, cols)


def open_yuv(path: str | os.PathLike, fmt: YuvFormat | None = None, **overrides) -> YuvReader:
    """Open a raw YUV file, taking its format from `fmt` or from flags/name via resolve_format."""
    return YuvReader(path, fmt if fmt is not None else resolve_format(path, **overrides))


def frame_to_bytes(planes: tuple[np.ndarray, ...] | list[np.ndarray], fmt: YuvFormat) -> bytes:
    """Serialise one frame's planes after checking they match the format."""
    if len(planes) != len(fmt.plane_shapes):
        raise YuvFormatError(f"expected {len(fmt.plane_shapes)} planes, got {len(planes)}")
    chunks = []
    for plane, shape in zip(planes, fmt.plane_shapes, strict=True):
        if plane.shape != shape:
            raise YuvFormatError(f"plane of shape {plane.shape} does not match {shape}")
        if plane.size and int(plane.max()) > fmt.peak:
            raise YuvFormatError(f"sample value {int(plane.max())} exceeds {fmt.bit_depth}-bit")
        chunks.append(np.ascontiguousarray(plane, dtype=fmt.dtype).tobytes())
    return b"".join(chunks)


class YuvWriter:
    """Writes frames to `path` under a temporary name; `close()` renames it into place.

    Used as a context manager: on an exception the temporary file is removed, so a half
    written sequence never carries the final name.
    """

    def __init__(self, path: str | os.PathLike, fmt: YuvFormat) -> None:
        self.path = Path(path)
        self.format = fmt
        self.tmp_path = temporary_sibling(self.path)
        self.frames_written = 0
        self._f = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in close()/abort()

    def write(self, planes: tuple[np.ndarray, ...] | list[np.ndarray]) -> None:
        self._f.write(frame_to_bytes(planes, self.format))
        self.frames_written += 1

    def write_luma(self, luma: np.ndarray) -> None:
        """Write a frame given its luma only; chroma (if any) is set to mid-grey."""
        planes = [luma]
        for shape in self.format.plane_shapes[1:]:
            planes.append(np.full(shape, 1 << (self.format.bit_depth - 1), self.format.dtype))
        self.write(planes)

    def close(self) -> None:
        self._f.close()
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        self._f.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> YuvWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_yuv(path: str | os.PathLike, frames: Iterable[tuple[np.ndarray, ...]],
              fmt: YuvFormat) -> int:
    """Write a whole sequence atomically; returns the number of frames written."""
    with YuvWriter(path, fmt) as w:
        for planes in frames:
            w.write(planes)
    return w.frames_written


def convert_bit_depth(samples: np.ndarray, src_bits: int, dst_bits: int) -> np.ndarray:
    """8↔10-bit conversion as the reference software does it.

    Up: shift left (x << 2). Down: round half up and clip ((x + 2) >> 2, at most 255).
    """
    if src_bits == dst_bits:
        return samples.copy()
    x = samples.astype(np.int32)
    if dst_bits > src_bits:
        y = x << (dst_bits - src_bits)
    else:
        shift = src_bits - dst_bits
        y = np.minimum((x + (1 << (shift - 1))) >> shift, (1 << dst_bits) - 1)
    return y.astype(np.uint8 if dst_bits == 8 else np.uint16)
