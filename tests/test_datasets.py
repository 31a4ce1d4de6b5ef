"""ShardDataset over real shards written by codecnn.extract: normalisation against the frames,
DataLoader workers, augmentation, filters, the split by sequence, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli
from test_extract import FMT, FRAMES, H, W, make_yuv, random_map

from codecnn.datasets import ShardDataset, dataset_info, split_by_sequence
from codecnn.datasets.shard_dataset import _dihedral
from codecnn.errors import DataError
from codecnn.extract import extract_yuv
from codecnn.io.yuv import YuvReader


@pytest.fixture
def shards(tmp_path):
    """Three shards: seqA at QP 22 and 37 (with depth), seqB at QP 22 (with depth)."""
    d = tmp_path / "shards"
    d.mkdir()
    frames = {}
    for seq, qp, seed in (("seqA", 22, 10), ("seqA", 37, 20), ("seqB", 22, 30)):
        rec = make_yuv(tmp_path / f"{seq}_{qp}_rec.yuv", seed)
        orig = make_yuv(tmp_path / f"{seq}_orig.yuv", {"seqA": 1, "seqB": 2}[seq])
        depth = tmp_path / f"{seq}_{qp}_depth.raw"
        depth_maps = random_map(seed + 1, 0, 8)
        depth.write_bytes(depth_maps.tobytes())
        extract_yuv(rec, orig, d / f"{seq}_qp{qp}.h5", size=(W, H), bit_depth=10, qp=qp,
                    depth_map=depth, sequence=seq)
        frames[(seq, qp)] = (YuvReader(rec, FMT), YuvReader(orig, FMT), depth_maps)
    return d, frames


def test_items_normalised_against_frames(shards):
    d, frames = shards
    ds = ShardDataset(d)
    assert len(ds) == 3 * FRAMES * 4
    assert ds.planes == ("rec", "qp", "depth") and ds.has_depth
    assert (ds.bit_depth, ds.ctu_size, ds.border, ds.peak) == (10, 128, 2, 1023.0)
    assert ds.sequences == ["seqA", "seqB"]
    for i in range(len(ds)):
        item = ds[i]
        rec, orig, depth = frames[(item["sequence"], item["nominal_qp"])]
        m = ds.meta[i]
        k, x, y = item["poc"], int(m["ctu_x"]), int(m["ctu_y"])
        vw, vh = int(m["valid_w"]), int(m["valid_h"])
        assert item["input"].dtype == torch.float32 and item["input"].shape == (3, 132, 132)
        assert item["target"].shape == (1, 128, 128) and item["valid"].shape == (1, 128, 128)
        inner = item["input"][:, 2:2 + vh, 2:2 + vw].numpy()
        np.testing.assert_allclose(inner[0] * 1023, rec.luma(k)[y:y + vh, x:x + vw], atol=1e-3)
        np.testing.assert_allclose(inner[1] * 63, item["nominal_qp"], atol=1e-4)
        np.testing.assert_allclose(inner[2] * 8, depth[k, y:y + vh, x:x + vw], atol=1e-4)
        resid = (orig.luma(k)[y:y + vh, x:x + vw].astype(np.float64)
                 - rec.luma(k)[y:y + vh, x:x + vw]) / 1023
        np.testing.assert_allclose(item["target"][0, :vh, :vw].numpy(), resid, atol=1e-6)
        valid = item["valid"][0].numpy()
        assert valid[:vh, :vw].all() and valid.sum() == vw * vh


def test_dataloader_two_workers_matches_direct_read(shards):
    d, _ = shards
    ds = ShardDataset(d, planes=("rec", "qp"))
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    got = {k: [] for k in ("input", "target", "valid", "poc", "nominal_qp")}
    for batch in loader:
        for k in got:
            got[k].append(batch[k])
    direct = [ds[i] for i in range(len(ds))]
    for k in got:
        expected = torch.stack([torch.as_tensor(item[k]) for item in direct])
        assert torch.equal(torch.cat(got[k]), expected), k


def test_augmentation_is_one_dihedral_for_all_planes(shards):
    d, _ = shards
    plain = ShardDataset(d, sequences=["seqB"])
    aug = ShardDataset(d, sequences=["seqB"], augment=True)
    torch.manual_seed(0)
    seen = set()
    for i in (1, 2, 3) * 4:  # cut CTUs: their valid masks are asymmetric
        a, p = aug[i], plain[i]
        matches = [k for k in range(8)
                   if np.array_equal(a["input"].numpy(), _dihedral(p["input"].numpy(), k))
                   and np.array_equal(a["target"].numpy(), _dihedral(p["target"].numpy(), k))
                   and np.array_equal(a["valid"].numpy(), _dihedral(p["valid"].numpy(), k))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 2


def test_filters_and_planes(shards):
    d, _ = shards
    assert len(ShardDataset(d, qps=[37])) == FRAMES * 4
    assert set(ShardDataset(d, qps=[22]).meta["nominal_qp"]) == {22}
    only_b = ShardDataset(d, sequences=["seqB"], full_ctus_only=True)
    assert len(only_b) == FRAMES and only_b.sequences == ["seqB"]
    assert ShardDataset(sorted(d.iterdir())[:1], planes=("rec",))[0]["input"].shape == (1, 132,
                                                                                         132)
    with pytest.raises(DataError, match="no patches match"):
        ShardDataset(d, qps=[27])
    with pytest.raises(DataError, match="unknown plane"):
        ShardDataset(d, planes=("rec", "satd"))


def test_depth_on_shards_without_depth(tmp_path):
    rec, orig = make_yuv(tmp_path / "r.yuv", 1), make_yuv(tmp_path / "o.yuv", 2)
    extract_yuv(rec, orig, tmp_path / "nodepth.h5", size=(W, H), bit_depth=10, qp=32)
    ds = ShardDataset(tmp_path / "nodepth.h5")
    assert ds.planes == ("rec", "qp") and not ds.has_depth
    with pytest.raises(DataError, match="nodepth.h5: shard has no depth"):
        ShardDataset(tmp_path / "nodepth.h5", planes=("rec", "qp", "depth"))


def test_split_by_sequence(shards):
    d, _ = shards
    train, val = split_by_sequence(d, val_sequences=["seqB"], augment=True)
    assert train.sequences == ["seqA"] and val.sequences == ["seqB"]
    assert train.augment and not val.augment
    assert len(train) == 2 * FRAMES * 4 and len(val) == FRAMES * 4
    train, val = split_by_sequence(d, val_fraction=0.2, seed=3, planes=("rec", "qp"))
    assert set(train.sequences).isdisjoint(val.sequences)
    assert sorted(train.sequences + val.sequences) == ["seqA", "seqB"]
    assert train.planes == ("rec", "qp")
    # Same seed → same split.
    assert split_by_sequence(d, seed=3)[1].sequences == val.sequences
    with pytest.raises(DataError, match="at least 2 sequences"):
        split_by_sequence(d / "seqA_qp22.h5")
    with pytest.raises(DataError, match="'seqC' is in no shard"):
        split_by_sequence(d, val_sequences=["seqC"])


def test_dataset_info_cli(shards):
    d, _ = shards
    proc = run_cli("dataset", "info", d, check=True)
    assert "QP 22: 24" in proc.stdout and "QP 37: 12" in proc.stdout
    assert "seqA: 24" in proc.stdout and "seqB: 12" in proc.stdout
    assert "has_depth: True" in proc.stdout and "blosc/lz4" in proc.stdout
    info = dataset_info(d)
    assert info["bytes"] == sum(p.stat().st_size for p in d.iterdir())


def test_corrupt_hdf5(tmp_path, shards):
    d, _ = shards
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"this is not HDF5" * 100)
    assert_one_line_error(run_cli("dataset", "info", garbage), str(garbage), "not a readable")
    with pytest.raises(DataError, match="garbage.h5: not a readable HDF5") as e:
        ShardDataset(garbage)
    assert "\n" not in str(e.value)
    # A shard cut short (as a copy interrupted half way): unreadable, named.
    src = d / "seqA_qp22.h5"
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    assert_one_line_error(run_cli("dataset", "info", cut), str(cut))
    with pytest.raises(DataError, match="cut.h5"):
        ds = ShardDataset(cut)
        for i in range(len(ds)):
            ds[i]
    assert_one_line_error(run_cli("dataset", "info", tmp_path / "none.h5"), "none.h5",
                          "no such")
