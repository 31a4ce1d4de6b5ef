"""RDN models: shapes for every preset and side-info combination, the residual path, loading."""

from __future__ import annotations

import pytest
import torch

from codecnn.errors import CodecnnError, DataError
from codecnn.models import MODELS, PRESETS, build_model, config_to_dict, load_model

PLANES = [("rec",), ("rec", "qp"), ("rec", "depth"), ("rec", "qp", "depth")]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("planes", PLANES)
def test_preset_shapes_132_to_128(preset, planes):
    torch.manual_seed(0)
    model = build_model(preset, planes=planes)
    assert model.config.planes == planes and model.config.border == 2
    x = torch.rand(1, len(planes), 132, 132)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 1, 128, 128)
    assert torch.isfinite(y).all()


def test_fully_convolutional_any_size():
    model = build_model("rdn-ds", features=8, blocks=1, layers=2, growth=4)
    with torch.no_grad():
        assert model(torch.rand(2, 2, 68, 36)).shape == (2, 1, 64, 32)
    model = build_model("rdn", features=8, blocks=1, layers=2, growth=4, border=3)
    with torch.no_grad():
        assert model(torch.rand(1, 2, 21, 17)).shape == (1, 1, 15, 11)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_zero_tail_leaves_reconstruction_unchanged(preset):
    """The output convolution starts at zero (the filter starts as the identity), and with it
    zeroed the reconstruction comes back unchanged; with a random tail the residual is not
    zero (the residual path is real, not a constant)."""
    torch.manual_seed(0)
    model = build_model(preset, planes=("rec", "qp"))
    x = torch.rand(2, 2, 132, 132)
    rec = x[:, :1, 2:-2, 2:-2]
    with torch.no_grad():
        assert torch.equal(rec + model(x), rec)
        model.tail.reset_parameters()
        assert model(x).abs().max() > 0
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        out = rec + model(x)
    assert torch.equal(out, rec)


def test_presets_match_research_notes():
    assert set(MODELS) == {"rdn", "resnet", "imdn", "rcan", "mobile", "lop"}
    s, m, ds = (build_model(p).config for p in ("rdn-s", "rdn-m", "rdn-ds"))
    assert (s.features, s.blocks, s.layers, s.growth, s.updown) == (32, 3, 6, 16, False)
    assert (m.features, m.blocks, m.layers, m.growth, m.updown) == (32, 4, 6, 24, False)
    assert (ds.features, ds.blocks, ds.layers, ds.growth, ds.updown) == (64, 4, 6, 24, True)


def test_bad_names_and_planes():
    with pytest.raises(CodecnnError, match="unknown model or preset 'rdn-xl'"):
        build_model("rdn-xl")
    with pytest.raises(CodecnnError, match="must contain 'rec'"):
        build_model("rdn-s", planes=("qp",))
    with pytest.raises(CodecnnError, match="no option"):
        build_model("rdn-s", width=3)


def test_load_model_roundtrip_and_truncated(tmp_path):
    model = build_model("rdn-s", planes=("rec",), features=8, blocks=1, layers=2, growth=4)
    ckpt = {"model_name": "rdn", "model_config": config_to_dict(model.config),
            "model_state": model.state_dict(), "step": 7, "data": {"shards": []}}
    path = tmp_path / "m.pt"
    torch.save(ckpt, path)
    loaded, meta = load_model(path)
    assert loaded.config == model.config and meta["step"] == 7
    x = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        model.tail.reset_parameters()  # a non-trivial output to compare
        torch.save({**ckpt, "model_state": model.state_dict()}, path)
        loaded, _ = load_model(path)
        assert loaded(x).abs().max() > 0
        assert torch.equal(loaded(x), model.eval()(x))
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.pt: not a readable checkpoint"):
        load_model(tmp_path / "cut.pt")
    with pytest.raises(DataError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")
