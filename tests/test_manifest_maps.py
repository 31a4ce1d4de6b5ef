"""One rule for a manifest's pictures and maps, shared by extraction and evaluation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from codecnn.codec.manifest import CodedSequence, PictureInfo
from codecnn.codec.manifest_maps import open_sequence_map, picture_qp, sequence_pictures
from codecnn.errors import DataError


def sequence(config: str = "ai", pictures: list[PictureInfo] | None = None,
             **kw) -> CodedSequence:
    return CodedSequence(source="s", width=8, height=4, bit_depth=10, fps=30.0, frames=3,
                         codec="vvc", config=config, qp=32, original="o.yuv",
                         reconstruction="r.yuv", bitstream="b.266", bitstream_bits=0,
                         pictures=pictures or [], **kw)


RA_PICTURES = [PictureInfo(0, "I", 32), PictureInfo(1, "B", 36), PictureInfo(2, "B", 35)]


def test_listed_pictures_give_pocs_types_and_slice_qps():
    pics = sequence_pictures(sequence("ra", RA_PICTURES))
    assert (pics.pocs, pics.slice_types, pics.slice_qps) == (
        [0, 1, 2], ["I", "B", "B"], [32, 36, 35])
    qp = open_sequence_map(sequence("ra", RA_PICTURES), "qp")
    assert [int(np.unique(qp.frame(k))[0]) for k in range(3)] == [32, 36, 35]
    assert qp.frame(0).shape == (4, 8)
    assert open_sequence_map(sequence("ra", RA_PICTURES), "depth") is None
    assert [picture_qp(sequence("ra", RA_PICTURES), k) for k in range(3)] == [32, 36, 35]


def test_all_intra_without_pictures_stands_for_the_nominal_qp():
    pics = sequence_pictures(sequence("ai"))
    assert (pics.pocs, pics.slice_types, pics.slice_qps) == ([0, 1, 2], ["I"] * 3, [32] * 3)
    assert picture_qp(sequence("ai"), 2) == 32


def test_random_access_without_pictures_is_refused_by_every_reader():
    seq = sequence("ra")
    for read in (lambda: sequence_pictures(seq, "m.json"),
                 lambda: open_sequence_map(seq, "qp", "m.json"),
                 lambda: picture_qp(seq, 0)):
        with pytest.raises(DataError, match="no per-picture slice QPs"):
            read()


def test_picture_count_and_missing_map_files_are_errors(tmp_path):
    with pytest.raises(DataError, match="m.json: manifest lists 3 pictures for 5 frames"):
        sequence_pictures(sequence("ra", RA_PICTURES), "m.json", frames=5)
    seq = dataclasses.replace(sequence("ai"), depth_map=str(tmp_path / "depth.raw"),
                              depth_map_format={"kind": "raw", "granularity": 1})
    with pytest.raises(DataError, match="depth map .*depth.raw is missing"):
        open_sequence_map(seq, "depth", "m.json")
    (tmp_path / "depth.raw").write_bytes(bytes([1, 2, 3] * 32))  # 3 planes of 8x4
    depth = open_sequence_map(seq, "depth", "m.json")
    assert depth.frame(0).shape == (4, 8) and int(depth.frame(2).max()) == 3
