"""The YUView block-statistics writer: exact text, checks, atomic write, read back."""

from __future__ import annotations

import numpy as np
import pytest
from yuview_format import read_like_yuview

from codecnn.io.blockstats import StatType, write_block_stats
from codecnn.io.sideinfo import VtmTraceMap, parse_vtm_trace

BLOCKS = np.array([[0, 0, 64, 64], [64, 0, 36, 64], [0, 64, 100, 12]])


def test_text_as_vtm_writes_it_and_read_back(tmp_path):
    path = write_block_stats(
        tmp_path / "s.vtmbmsstats", 100, 76,
        [StatType("QP", "Integer", (0, 63)), StatType("On", "Flag")],
        [(0, BLOCKS, {"QP": np.array([22, 27, 32]), "On": np.array([True, False, True])}),
         (1, BLOCKS, {"QP": np.full(3, 37), "On": np.zeros(3, bool)})],
        comments=["made by\na test"])
    assert path.read_text().splitlines()[:7] == [
        "# VTMBMS Block Statistics",
        "# Sequence size: [100x 76]",
        "# Block Statistic Type: QP; Integer; [0, 63]",
        "# Block Statistic Type: On; Flag; ",
        "# made by a test",
        "BlockStat: POC 0 @(   0,   0) [64x64] QP=22",
        "BlockStat: POC 0 @(  64,   0) [36x64] QP=27",
    ]
    size, types, data = read_like_yuview(path)
    assert size == (100, 76) and types == {"QP": ("Integer", (0, 63)), "On": ("Flag", None)}
    assert data == parse_vtm_trace(path, ["QP", "On"])
    assert data[1]["On"] == [(*b, 0) for b in BLOCKS.tolist()]
    qp = VtmTraceMap(path, "qp", 100, 76, [0, 1])
    assert qp.frame(0)[0, 0] == 22 and qp.frame(0)[63, 99] == 27 and qp.frame(0)[75, 0] == 32
    assert (qp.frame(1) == 37).all()


@pytest.mark.parametrize("bad, match", [
    ({"QP": np.array([1, 2, 3]), "On": np.array([0, 2, 1])}, "a Flag is 0 or 1"),
    ({"QP": np.array([1.5, 2, 3]), "On": np.array([0, 1, 1])}, "integer values"),
    ({"QP": np.array([1, 2, 3])}, "declared"),
])
def test_bad_values_leave_no_file(tmp_path, bad, match):
    types = [StatType("QP", "Integer", (0, 63)), StatType("On", "Flag")]
    with pytest.raises(ValueError, match=match):
        write_block_stats(tmp_path / "s.vtmbmsstats", 100, 76, types, [(0, BLOCKS, bad)])
    assert not list(tmp_path.iterdir())


def test_bad_blocks_names_and_pocs(tmp_path):
    one = {"V": np.array([1])}
    t = [StatType("V", "Integer", (0, 1))]
    with pytest.raises(ValueError, match="outside"):
        write_block_stats(tmp_path / "a", 100, 76, t, [(0, [[96, 0, 8, 8]], one)])
    with pytest.raises(ValueError, match="already written"):
        write_block_stats(tmp_path / "a", 100, 76, t, [(0, [[0, 0, 8, 8]], one)] * 2)
    with pytest.raises(ValueError, match="letters, digits"):
        StatType("gain dB", "Integer", (0, 1))
    with pytest.raises(ValueError, match="value_range"):
        StatType("V")
    assert not list(tmp_path.iterdir())
