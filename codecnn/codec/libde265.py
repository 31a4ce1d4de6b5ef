"""HEVC decoding with libde265 through ctypes: reconstruction, CB grid and QP per picture.

libde265 is a real HEVC decoder. Besides the decoded planes it exports the functions its
sherlock265 viewer uses to draw a picture's coding structure (`draw_CB_grid`,
`draw_TB_grid`, `draw_QuantPY`, ..., declared in libde265/visualize.h as
``void draw_CB_grid(const de265_image*, uint8_t* dst, int stride, uint32_t value,
int pixelSize)`` and ``void draw_QuantPY(const de265_image*, uint8_t* dst, int stride,
int pixelSize)``). They are the one source of real coding-block partitions available on any
machine, so codecnn turns them into exact CU depth and QP maps:

- `draw_CB_grid` paints the top row and left column of every coding block (CB), clipped to
  the coded picture. HEVC CBs are the square leaves of a quadtree inside each CTB, aligned
  to multiples of their size, so the grid gives the quadtree depth exactly:
  depth = log2(ctb_size / cb_size) (`depth_from_cb_grid`), and conversely the grid is
  `x % s == 0 or y % s == 0` with s the CB size at (x, y) (`cb_grid_from_depth`).
- `draw_QuantPY` fills each CB with a grey level ``int(255 * (clamp(QpY, 20, 40) - 20) /
  20)``. Inside 20..40 the 21 levels are distinct, so the CB's QP is recovered exactly
  (`qp_from_grey`); outside that range the drawing saturates and the QP comes from the
  headers (the slice QP, exact whenever cu_qp_delta_enabled_flag is 0, as in codecnn's
  fixed-QP encodes).

The library is found, in this order (`find_libde265`):
1. the file named by the environment variable ``CODECNN_LIBDE265`` (when set, it is the
   only place tried: a wrong explicit path is an error, never silently replaced);
2. the system library (Debian/Ubuntu package ``libde265-0``: ``libde265.so.0``);
3. the copy inside the pillow-heif wheel (``site-packages/pillow_heif.libs/libde265-*.so*``).
For tests, ``CODECNN_LIBDE265_SKIP`` (comma-separated: ``system``, ``pillow-heif``) hides
places 2 and 3 so the "not found" path can be exercised on a machine that has both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from codecnn.codec.hevc import access_units
from codecnn.errors import CodecError

ENV_LIBRARY = "CODECNN_LIBDE265"
ENV_SKIP = "CODECNN_LIBDE265_SKIP"
SYSTEM_SONAME = "libde265.so.0"

QP_DRAW_MIN, QP_DRAW_MAX = 20, 40  # draw_QuantPY's clamp (libde265 visualize.cc)

_DE265_OK = 0
_DE265_ERROR_IMAGE_BUFFER_FULL = 9
_DE265_ERROR_WAITING_FOR_INPUT_DATA = 13
_FIRST_WARNING = 1000  # de265_error values >= 1000 are warnings


def _pillow_heif_libs() -> Path | None:
    spec = importlib.util.find_spec("pillow_heif")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent.parent / "pillow_heif.libs"


def _candidates() -> tuple[list[tuple[str, str | None, str]], bool]:
    """[(place, path or None, why not)], and whether the explicit variable was set."""
    explicit = os.environ.get(ENV_LIBRARY)
    if explicit:
        why = "" if Path(explicit).is_file() else "no such file"
        return [(f"{ENV_LIBRARY}={explicit}", explicit if not why else None, why)], True
    skip = {s.strip() for s in os.environ.get(ENV_SKIP, "").split(",") if s.strip()}
    out: list[tuple[str, str | None, str]] = [(ENV_LIBRARY, None, "not set")]
    if "system" in skip:
        out.append((f"system {SYSTEM_SONAME}", None, f"skipped by {ENV_SKIP}"))
    else:
        name = ctypes.util.find_library("de265") or SYSTEM_SONAME
        out.append((f"system {name}", name, ""))
    libs = _pillow_heif_libs()
    place = f"pillow-heif {libs or 'pillow_heif.libs'}/libde265-*.so*"
    if "pillow-heif" in skip:
        out.append((place, None, f"skipped by {ENV_SKIP}"))
    else:
        found = sorted(libs.glob("libde265-*.so*")) if libs is not None and libs.is_dir() else []
        out.append((place, str(found[0]) if found else None, "" if found else "not found"))
    return out, False


_REQUIRED = ("de265_new_decoder", "de265_push_NAL", "de265_flush_data", "de265_decode",
             "de265_peek_next_picture", "de265_release_next_picture", "de265_get_image_plane",
             "de265_get_bits_per_pixel", "draw_CB_grid", "draw_QuantPY")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the C signatures (libde265/de265.h and visualize.h) on a loaded library."""
    vp, cp, i, u8p = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint8)
    sig = {
        "de265_get_version": (cp, []),
        "de265_new_decoder": (vp, []),
        "de265_free_decoder": (i, [vp]),
        "de265_start_worker_threads": (i, [vp, i]),
        "de265_push_NAL": (i, [vp, vp, i, ctypes.c_int64, vp]),
        "de265_flush_data": (i, [vp]),
        "de265_decode": (i, [vp, ctypes.POINTER(i)]),
        "de265_get_warning": (i, [vp]),
        "de265_get_error_text": (cp, [i]),
        "de265_peek_next_picture": (vp, [vp]),
        "de265_release_next_picture": (None, [vp]),
        "de265_get_image_width": (i, [vp, i]),
        "de265_get_image_height": (i, [vp, i]),
        "de265_get_chroma_format": (i, [vp]),
        "de265_get_bits_per_pixel": (i, [vp, i]),
        "de265_get_image_plane": (u8p, [vp, i, ctypes.POINTER(i)]),
        "de265_get_image_PTS": (ctypes.c_int64, [vp]),
        "draw_CB_grid": (None, [vp, u8p, i, ctypes.c_uint32, i]),
        "draw_TB_grid": (None, [vp, u8p, i, ctypes.c_uint32, i]),
        "draw_QuantPY": (None, [vp, u8p, i, i]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


@cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    missing = [name for name in _REQUIRED if not hasattr(lib, name)]
    if missing:
        raise CodecError(f"{path}: libde265 lacks {', '.join(missing)}")
    return _declare(lib)


def find_libde265() -> ctypes.CDLL:
    """Load libde265 from the first place that has it (order in the module docstring).

    Raises CodecError naming every place looked in when none works.
    """
    candidates, explicit = _candidates()
    tried = []
    for place, path, why in candidates:
        if path is None:
            tried.append(f"{place} ({why})")
            continue
        try:
            return _load(path)
        except OSError as e:
            tried.append(f"{place} ({e})")
    if explicit:
        tried.append(f"unset {ENV_LIBRARY} to use the system {SYSTEM_SONAME} (Debian package "
                     "libde265-0) or the copy in pillow-heif's pillow_heif.libs")
    raise CodecError("libde265 not found: " + "; ".join(tried))


def libde265_version() -> str:
    """Version string of the libde265 that `find_libde265` loads."""
    return find_libde265().de265_get_version().decode()


# --- decoding ---------------------------------------------------------------------------

@dataclass
class DecodedPicture:
    """One decoded picture in output order.

    planes: (Y, Cb, Cr) or (Y,), uint16 (bit_depth > 8) or uint8, at the cropped (output)
        size, chroma 4:2:0 planes of ceil(W/2)×ceil(H/2).
    decode_index: position of its access unit in decode order (0-based).
    cb_grid: bool [H, W], True on the top row and left column of every CB (draw_CB_grid),
        in output coordinates.
    qp_grey: uint8 [H, W], draw_QuantPY's grey level per sample (see `qp_from_grey`).
    coded_size: (width, height) of the coded picture (pic_width/height_in_luma_samples),
        read off the grid: row 0 and column 0 are CB boundaries across the whole picture.
    """

    planes: tuple[np.ndarray, ...]
    bit_depth: int
    decode_index: int
    cb_grid: np.ndarray
    qp_grey: np.ndarray
    coded_size: tuple[int, int]


def _error_text(lib: ctypes.CDLL, err: int) -> str:
    return lib.de265_get_error_text(err).decode(errors="replace")


def _copy_plane(lib: ctypes.CDLL, img: int, channel: int) -> np.ndarray:
    w = lib.de265_get_image_width(img, channel)
    h = lib.de265_get_image_height(img, channel)
    bits = lib.de265_get_bits_per_pixel(img, channel)
    stride = ctypes.c_int()
    ptr = lib.de265_get_image_plane(img, channel, ctypes.byref(stride))
    bps = (bits + 7) // 8
    raw = np.ctypeslib.as_array(ptr, shape=(h * stride.value,)).reshape(h, stride.value)
    raw = raw[:, : w * bps]
    if bps == 2:
        return raw.copy().view("<u2").reshape(h, w)
    return raw.copy()


def _draw(lib: ctypes.CDLL, img: int, width: int, height: int,
          window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    # The drawing functions work in coded-picture coordinates and draw_QuantPY fills whole
    # CBs without clipping, so the canvas must hold the whole coded picture: the output size
    # plus the conformance window, rounded up to whole 64×64 CTBs (HEVC's largest), plus one.
    left, right, top, bottom = window
    cw = -(-(width + left + right) // 64) * 64 + 64
    ch = -(-(height + top + bottom) // 64) * 64 + 64
    u8p = ctypes.POINTER(ctypes.c_uint8)
    grid = np.zeros((ch, cw), np.uint8)
    lib.draw_CB_grid(img, grid.ctypes.data_as(u8p), cw, 255, 1)
    grey = np.zeros((ch, cw), np.uint8)
    lib.draw_QuantPY(img, grey.ctypes.data_as(u8p), cw, 1)
    coded_w = int(np.argmin(grid[0] > 0)) if not grid[0].all() else cw
    coded_h = int(np.argmin(grid[:, 0] > 0)) if not grid[:, 0].all() else ch
    sl = np.s_[top : top + height, left : left + width]
    return grid[sl] > 0, grey[sl].copy(), (coded_w, coded_h)


def iter_decode(bitstream: str | os.PathLike | bytes,
                window: tuple[int, int, int, int] = (0, 0, 0, 0),
                maps: bool = True) -> Iterator[DecodedPicture]:
    """Decode an HEVC Annex-B bitstream with libde265, yielding pictures in output order.

    window: the SPS conformance window (left, right, top, bottom) in luma samples. The
    sherlock265 drawings are in coded-picture coordinates while the planes come back
    cropped; (0, 0, 0, 0) is right for x265 streams, whose right/bottom padding (< 8
    samples) the canvas margin covers, and `hevc_maps.decode_hevc` passes the SPS's.
    maps=False skips the drawings (cb_grid/qp_grey are empty arrays, coded_size is the
    output size): plain decoding, as the benchmark's baseline.
    """
    lib = find_libde265()
    if isinstance(bitstream, bytes):
        data, name = bitstream, "<bytes>"
    else:
        name = str(bitstream)
        try:
            data = Path(bitstream).read_bytes()
        except OSError as e:
            raise CodecError(f"{name}: cannot read bitstream ({e.strerror})") from None
    aus = access_units(data)
    if not aus:
        raise CodecError(f"{name}: no HEVC access units (not an Annex-B .265 stream?)")
    ctx = lib.de265_new_decoder()
    if not ctx:
        raise CodecError("libde265: cannot create a decoder")
    try:
        for k, au in enumerate(aus):
            for nal in au:
                buf = ctypes.create_string_buffer(nal.data, len(nal.data))
                err = lib.de265_push_NAL(ctx, buf, len(nal.data), k, None)
                if err != _DE265_OK:
                    raise CodecError(f"{name}: libde265: {_error_text(lib, err)}")
        lib.de265_flush_data(ctx)
        more = ctypes.c_int(1)
        while more.value:
            more.value = 0
            err = lib.de265_decode(ctx, ctypes.byref(more))
            # IMAGE_BUFFER_FULL only asks for pictures to be taken out, done just below
            if err not in (_DE265_OK, _DE265_ERROR_WAITING_FOR_INPUT_DATA,
                           _DE265_ERROR_IMAGE_BUFFER_FULL) and err < _FIRST_WARNING:
                raise CodecError(f"{name}: libde265: {_error_text(lib, err)}")
            while True:
                warn = lib.de265_get_warning(ctx)
                if warn == _DE265_OK:
                    break
                raise CodecError(f"{name}: libde265: {_error_text(lib, warn)}")
            img = lib.de265_peek_next_picture(ctx)
            while img:
                chroma = lib.de265_get_chroma_format(img)
                planes = tuple(_copy_plane(lib, img, c) for c in range(1 if chroma == 0 else 3))
                h, w = planes[0].shape
                if maps:
                    grid, grey, coded = _draw(lib, img, w, h, window)
                else:
                    grid, grey, coded = np.zeros((0, 0), bool), np.zeros((0, 0), np.uint8), (w, h)
                pic = DecodedPicture(planes, lib.de265_get_bits_per_pixel(img, 0),
                                     int(lib.de265_get_image_PTS(img)), grid, grey, coded)
                lib.de265_release_next_picture(ctx)
                yield pic
                img = lib.de265_peek_next_picture(ctx)
    finally:
        lib.de265_free_decoder(ctx)


# --- CB grid ↔ quadtree depth, grey ↔ QP ---------------------------------------------------

def depth_from_cb_grid(grid: np.ndarray, ctb_size: int = 64, min_cb_size: int = 8,
                       coded_size: tuple[int, int] | None = None) -> np.ndarray:
    """Quadtree depth per sample from a CB grid.

    grid: bool [H, W], True on each CB's top row and left column (as draw_CB_grid paints).
    coded_size: (width, height) of the coded picture when larger than the grid (HEVC splits
        every block that crosses the coded picture's edge, whether or not the grid shows it).
    Returns uint8 [H, W] holding log2(ctb_size / cb_size): 0..log2(ctb_size/min_cb_size).

    A block of size s > min_cb_size is split iff it crosses the coded picture's edge or the
    grid marks a sample strictly inside it (off its own top row and left column). Splits
    nest (a child's inside lies in its parent's), so the depth of a sample is the number of
    levels whose block around it is split (one vectorised pass over the grid per level).
    """
    h, w = grid.shape
    cw, chh = coded_size if coded_size is not None else (w, h)
    ph, pw = -(-h // ctb_size) * ctb_size, -(-w // ctb_size) * ctb_size
    padded = np.zeros((ph, pw), bool)
    padded[:h, :w] = grid
    depth = np.zeros((ph // min_cb_size, pw // min_cb_size), np.uint8)  # per minimum CB
    s = ctb_size
    while s > min_cb_size:
        blocks = padded.reshape(ph // s, s, pw // s, s)
        inside = blocks[:, 1:, :, 1:].any(axis=(1, 3))
        y0 = np.arange(0, ph, s)[:, None]
        x0 = np.arange(0, pw, s)[None, :]
        split = (inside | (x0 + s > cw) | (y0 + s > chh)).astype(np.uint8)
        r = s // min_cb_size
        depth += np.repeat(np.repeat(split, r, 0), r, 1)
        s //= 2
    full = np.repeat(np.repeat(depth, min_cb_size, 0), min_cb_size, 1)
    return np.ascontiguousarray(full[:h, :w])


def cb_grid_from_depth(depth: np.ndarray, ctb_size: int = 64) -> np.ndarray:
    """The CB grid a depth map implies: bool [H, W], True where x % s == 0 or y % s == 0.

    s = ctb_size >> depth is the CB size at each sample; CBs are aligned to their size, so a
    sample lies on its CB's left column or top row exactly when this holds.
    """
    size = (ctb_size >> depth.astype(np.int64))
    ys, xs = np.indices(depth.shape)
    return (xs % size == 0) | (ys % size == 0)


def grey_of_qp(qp: np.ndarray | int) -> np.ndarray:
    """draw_QuantPY's grey level: int(255.f * ((float)clamp(q, 20, 40) - 20) / 20), float32."""
    q = np.clip(np.asarray(qp), QP_DRAW_MIN, QP_DRAW_MAX).astype(np.float32)
    f = (q - np.float32(QP_DRAW_MIN)) / np.float32(QP_DRAW_MAX - QP_DRAW_MIN)
    return (np.float32(255) * f).astype(np.uint8)


def qp_from_grey(grey: np.ndarray, slice_qp: int) -> np.ndarray:
    """Luma QP per sample from draw_QuantPY's grey levels: uint8 [H, W].

    Exact for CB QPs strictly inside 20..40 (levels are 12.75 apart, so rounding grey·20/255
    undoes the truncation). Grey 0 / 255 only says QP <= 20 / QP >= 40: there the slice QP from
    the headers is used (min(slice_qp, 20) / max(slice_qp, 40)), which is exact when
    cu_qp_delta_enabled_flag is 0 (every CU has the slice QP), as in codecnn's encodes.
    """
    lut = QP_DRAW_MIN + np.rint(np.arange(256) * (QP_DRAW_MAX - QP_DRAW_MIN) / 255.0)
    lut[0] = min(slice_qp, QP_DRAW_MIN)
    lut[255] = max(slice_qp, QP_DRAW_MAX)
    return np.clip(lut, 0, 255).astype(np.uint8)[grey]
