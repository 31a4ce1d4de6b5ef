import numpy as np
import pytest

from codecnn.errors import YuvFormatError
from codecnn.io.yuv import (
    YuvFormat,
    convert_bit_depth,
    open_yuv,
    parse_yuv_name,
    resolve_format,
    write_yuv,
)


def random_frames(fmt: YuvFormat, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [tuple(rng.integers(0, fmt.peak + 1, shape, dtype=fmt.dtype)
                  for shape in fmt.plane_shapes) for _ in range(n)]


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("chroma", ["420", "400"])
@pytest.mark.parametrize("size", [(64, 32), (451, 300), (17, 9)])
def test_round_trip(tmp_path, bit_depth, chroma, size):
    fmt = YuvFormat(*size, bit_depth, chroma)
    frames = random_frames(fmt, 3)
    path = tmp_path / "seq.yuv"
    assert write_yuv(path, frames, fmt) == 3
    assert path.stat().st_size == 3 * fmt.frame_bytes
    reader = open_yuv(path, fmt)
    assert len(reader) == 3
    for k, planes in enumerate(frames):
        got = reader.planes(k)
        assert len(got) == (1 if chroma == "400" else 3)
        for a, b in zip(got, planes, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(reader.luma(k), planes[0])


def test_odd_chroma_uses_ceil():
    fmt = YuvFormat(451, 300, 8, "420")
    assert fmt.plane_shapes == ((300, 451), (150, 226), (150, 226))
    assert fmt.frame_bytes == 451 * 300 + 2 * 150 * 226
    assert YuvFormat(451, 301, 10, "420").plane_shapes[1] == (151, 226)
    assert YuvFormat(451, 301, 10, "420").frame_bytes == 2 * (451 * 301 + 2 * 151 * 226)


def test_two_frame_10bit_counts_two(tmp_path):
    fmt = YuvFormat(8, 8, 10, "420")
    path = tmp_path / "a.yuv"
    write_yuv(path, random_frames(fmt, 2), fmt)
    assert len(open_yuv(path, fmt)) == 2


def test_partial_frame_is_an_error_naming_frame_size(tmp_path):
    fmt = YuvFormat(16, 16, 8, "420")
    path = tmp_path / "cut.yuv"
    path.write_bytes(b"\0" * (fmt.frame_bytes * 2 + 5))
    with pytest.raises(YuvFormatError, match=r"cut\.yuv.*384 bytes"):
        open_yuv(path, fmt)


def test_parse_names():
    p = parse_yuv_name("BasketballDrive_1920x1080_50fps_10bit_420.yuv")
    assert (p.width, p.height, p.bit_depth, p.chroma, p.fps) == (1920, 1080, 10, "420", 50.0)
    p = parse_yuv_name("/x/BQMall_832x480_60Hz_8bit_P420.yuv")
    assert (p.width, p.height, p.bit_depth, p.chroma, p.fps) == (832, 480, 8, "420", 60.0)
    p = parse_yuv_name("foo_176x144_gray.yuv")
    assert (p.width, p.height, p.chroma) == (176, 144, "400")
    assert parse_yuv_name("foo.yuv").width is None
    # a picture dimension of 400 is not the 4:0:0 chroma format
    p = parse_yuv_name("coffee_600x400_25fps_10bit_420.yuv")
    assert (p.width, p.height, p.bit_depth, p.chroma) == (600, 400, 10, "420")
    p = parse_yuv_name("foo_640x400_8bit.yuv")
    assert (p.width, p.height, p.bit_depth, p.chroma) == (640, 400, 8, None)
    p = parse_yuv_name("a_1280x720_yuv420p10le.yuv")
    assert (p.width, p.height, p.bit_depth, p.chroma) == (1280, 720, 10, "420")
    assert parse_yuv_name("b_400x240_gray10le.yuv").chroma == "400"


def test_unknown_size_is_an_error(tmp_path):
    with pytest.raises(YuvFormatError, match="unknown picture size"):
        resolve_format(tmp_path / "foo.yuv")
    fmt = resolve_format(tmp_path / "foo_176x144_10bit.yuv")
    assert fmt == YuvFormat(176, 144, 10, "420")


def test_bit_depth_conversion():
    x8 = np.arange(256, dtype=np.uint8)
    x10 = convert_bit_depth(x8, 8, 10)
    assert x10.dtype == np.uint16 and x10.max() == 1020
    np.testing.assert_array_equal(convert_bit_depth(x10, 10, 8), x8)
    assert convert_bit_depth(np.array([1023, 2, 1], np.uint16), 10, 8).tolist() == [255, 1, 0]


def test_interrupted_write_leaves_no_file(tmp_path):
    fmt = YuvFormat(8, 8, 8, "400")
    path = tmp_path / "out.yuv"

    def frames():
        yield (np.zeros((8, 8), np.uint8),)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_yuv(path, frames(), fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("chroma", ["420", "400"])
@pytest.mark.parametrize("size", [(64, 32), (17, 9)])
def test_luma_equals_ffmpeg_decode(tmp_path, bit_depth, chroma, size):
    """Our luma plane of frame k is what FFmpeg itself reads from the same raw file
    (extractplanes copies the Y plane as gray/gray10le without any range conversion)."""
    import subprocess

    import imageio_ffmpeg

    fmt = YuvFormat(*size, bit_depth, chroma)
    path = tmp_path / "seq.yuv"
    write_yuv(path, random_frames(fmt, 3, seed=bit_depth), fmt)
    gray = "gray" if bit_depth == 8 else "gray10le"
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
         "-pix_fmt", fmt.pix_fmt, "-video_size", f"{fmt.width}x{fmt.height}", "-i", str(path),
         "-vf", "extractplanes=y", "-f", "rawvideo", "-pix_fmt", gray, "-"],
        capture_output=True, check=True).stdout
    theirs = np.frombuffer(out, fmt.dtype).reshape(3, fmt.height, fmt.width)
    reader = open_yuv(path, fmt)
    for k in range(3):
        np.testing.assert_array_equal(reader.luma(k), theirs[k])
