"""Evaluation: PSNR, BD-rate, CTU tiling, switching, reports and the eval/filter CLI.

Coded data is real: two frames of carphone (176×144) encoded by VVenC (All Intra, fixed QP)
and decoded by FFmpeg's VVC decoder, at QPs 22/27/32/37. Models are tiny RDNs saved in the
checkpoint format of codecnn.models, or a stand-in with only unpadded convolutions.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli

from codecnn.codec.manifest import CodedSequence, PictureInfo, load_manifest, save_manifest
from codecnn.evaluate.bd import bd_psnr, bd_rate
from codecnn.evaluate.switching import switch_picture
from codecnn.evaluate.tiling import CUDA_BATCH, MAX_CPU_BATCH, TiledFilter, default_batch
from codecnn.io.metrics import PSNR_IDENTICAL, psnr
from codecnn.io.yuv import YuvFormat, open_yuv, write_yuv
from codecnn.models import build_model, config_to_dict

QPS = (22, 27, 32, 37)
W, H, FRAMES = 176, 144, 2


# --------------------------------------------------------------------------- real coded data

def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> list[Path]:
    """Manifests of carphone at four QPs, really encoded (VVenC AI) and decoded (FFmpeg)."""
    from codecnn.codec.samples import find_sample

    d = tmp_path_factory.mktemp("coded")
    src = find_sample("carphone_pristine")[2]
    ff = _ffmpeg()
    orig = d / "original.yuv"
    _run([ff, "-v", "error", "-y", "-i", str(src), "-frames:v", str(FRAMES), "-pix_fmt",
          "yuv420p10le", "-f", "rawvideo", str(orig)])
    manifests = []
    for qp in QPS:
        q = d / f"qp{qp}"
        q.mkdir()
        bs, rec = q / "bitstream.266", q / "rec.yuv"
        enc = [ff, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s",
               f"{W}x{H}", "-r", "30", "-i", str(orig), "-c:v", "libvvenc", "-qp", str(qp),
               "-qpa", "0", "-vvenc-params", "IntraPeriod=1:IntraQPOffset=0:GOPQPA=0:BIM=0",
               "-f", "vvc", str(bs)]
        dec = [ff, "-v", "error", "-y", "-i", str(bs), "-pix_fmt", "yuv420p10le", "-f",
               "rawvideo", str(rec)]
        _run(enc)
        _run(dec)
        seq = CodedSequence(
            source="carphone", width=W, height=H, bit_depth=10, fps=30.0, frames=FRAMES,
            codec="vvc", config="ai", qp=qp, original=str(orig), reconstruction=str(rec),
            bitstream=str(bs), bitstream_bits=bs.stat().st_size * 8,
            pictures=[PictureInfo(poc=k, slice_type="I", slice_qp=qp) for k in range(FRAMES)],
            commands={"encode": enc, "decode": dec})
        manifests.append(save_manifest(seq, q / "manifest.json"))
    return manifests


def tiny_rdn(planes=("rec", "qp"), seed: int = 0):
    """A tiny RDN with a random (not zero-initialised) tail, so it really changes pictures."""
    torch.manual_seed(seed)
    model = build_model("rdn", planes=planes, features=4, blocks=1, layers=1, growth=4)
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return model


def save_checkpoint(model, path: Path, bit_depth: int = 10) -> Path:
    """A checkpoint in the format codecnn.train writes (plain types + tensors)."""
    torch.save({
        "model_name": "rdn", "model_config": config_to_dict(model.config),
        "model_state": model.state_dict(), "optimizer_state": {}, "scheduler_state": {},
        "step": 7, "rng": {}, "data": {"shards": ["test"], "bit_depth": bit_depth},
        "best_metric": None,
        "codecnn_version": "0.1.0",
    }, path)
    return path


def zero_model(planes=("rec", "qp")):
    m = tiny_rdn(planes)
    with torch.no_grad():
        m.tail.weight.zero_()
        m.tail.bias.zero_()
    return m


def noise_model():
    """A filter that only harms: a large offset plus large random output weights."""
    m = tiny_rdn(seed=3)
    with torch.no_grad():
        m.tail.weight.normal_(0, 2.0)
        m.tail.bias.fill_(0.08)
    return m


# --------------------------------------------------------------------------- PSNR

@pytest.mark.parametrize("bit_depth", [8, 10])
def test_psnr_matches_skimage(bit_depth):
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    peak = (1 << bit_depth) - 1
    a = rng.integers(0, peak + 1, (37, 53)).astype(np.uint16)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, peak).astype(np.uint16)
    want = peak_signal_noise_ratio(a, b, data_range=peak)
    assert psnr(a, b, bit_depth) == pytest.approx(want, abs=1e-10)
    assert psnr(a, a, bit_depth) == PSNR_IDENTICAL


# --------------------------------------------------------------------------- BD-rate

RATE1 = [9487.76, 4593.60, 2486.44, 1358.24]  # libx265 RD points from the bjontegaard README
PSNR1 = [40.037, 38.615, 36.845, 34.851]
RATE2 = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR2 = [40.121, 38.651, 36.970, 34.987]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_matches_bjontegaard_package(method):
    import bjontegaard as bj

    # The package's "pchip" is SciPy's PchipInterpolator, which its authors checked against
    # the JCT-VC CTC Excel sheet to 10 decimals; ours is written from the algorithm.
    cases = [(RATE1, PSNR1, RATE2, PSNR2)]
    rng = np.random.default_rng(5)
    for _ in range(50):
        r = np.sort(rng.uniform(100, 10000, 4))
        p = np.sort(rng.uniform(30, 42, 4))
        cases.append((r, p, np.sort(r * rng.uniform(0.85, 1.15, 4)),
                      np.sort(p + rng.normal(0, 0.3, 4))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ra, pa, rt, pt in cases:
            want_r = bj.bd_rate(ra, pa, rt, pt, method=method, min_overlap=0)
            want_p = bj.bd_psnr(ra, pa, rt, pt, method=method, min_overlap=0)
            if np.isnan(want_r):
                continue
            assert bd_rate(ra, pa, rt, pt, method) == pytest.approx(want_r, abs=1e-4)
            assert bd_psnr(ra, pa, rt, pt, method) == pytest.approx(want_p, abs=1e-6)
    assert bd_rate(RATE1, PSNR1, RATE2, PSNR2) == pytest.approx(-4.4175, abs=1e-4)


def test_bd_identical_curves_and_known_ratio():
    assert bd_rate(RATE1, PSNR1, RATE1, PSNR1) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATE1, PSNR1, RATE1, PSNR1) == pytest.approx(0.0, abs=1e-12)
    # Same quality at 90 % of the rate at every point: exactly −10 %, with either method.
    for m in ("pchip", "cubic"):
        assert bd_rate(RATE1, PSNR1, [0.9 * r for r in RATE1], PSNR1, m) == pytest.approx(-10.0)


# --------------------------------------------------------------------------- tiling


@dataclass(frozen=True)
class _Cfg:
    planes: tuple = ("rec", "qp")
    border: int = 2


class UnpaddedNet(torch.nn.Module):
    """Only unpadded 3×3 convolutions: receptive field = border, so tiling is exact."""

    def __init__(self) -> None:
        super().__init__()
        self.config = _Cfg()
        torch.manual_seed(1)
        self.c1 = torch.nn.Conv2d(2, 6, 3)
        self.c2 = torch.nn.Conv2d(6, 1, 3)

    def forward(self, x):
        return 0.05 * torch.tanh(self.c2(torch.relu(self.c1(x))))


def _picture(h=136, w=200, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 400 + 200 * np.sin(x / 9.0) * np.cos(y / 7.0)
    return np.clip(base + rng.normal(0, 20, (h, w)), 0, 1023).astype(np.uint16)


def _whole(model, rec, qp, peak=1023):
    """One whole-picture pass: replicate-pad by the border, run, crop nothing."""
    b = model.config.border
    x = np.stack([rec / peak, np.full(rec.shape, qp / 63.0)]).astype(np.float32)
    x = torch.nn.functional.pad(torch.from_numpy(x)[None], (b, b, b, b), mode="replicate")
    with torch.no_grad():
        return model(x)[0, 0].numpy() * peak


@pytest.mark.parametrize("batch", [1, 4, 64])
def test_tiling_equals_whole_picture_and_covers_every_pixel(batch):
    rec = _picture()
    model = UnpaddedNet()
    tf = TiledFilter(model, 10, ctu=64, batch=batch)  # 200×136 → 4×3 CTUs, right/bottom cut
    out = np.full(rec.shape, np.nan, np.float32)  # poison
    tf.residual(tf.stack(rec, qp=32), out=out)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, _whole(model, rec, 32), atol=2e-4)
    # filter() rounds and clips the same residual
    want = np.clip(np.rint(rec + out), 0, 1023).astype(np.uint16)
    np.testing.assert_array_equal(tf.filter(rec, 32), want)


def test_tiling_with_rdn_ctu128_matches_away_from_seams():
    # The RDN's body is zero-padded, so near a CTU seam the CTU-wise result differs from a
    # whole-picture pass (as in the CTU-based in-loop filter); away from seams it is equal.
    rec = _picture()
    model = tiny_rdn()
    tf = TiledFilter(model, 10, ctu=128, batch=2)
    out = np.full(rec.shape, np.nan, np.float32)
    tf.residual(tf.stack(rec, qp=27), out=out)
    assert not np.isnan(out).any()
    whole = _whole(model, rec, 27)
    r = 4  # receptive-field reach past the border of the tiny RDN (1 RDB × 1 layer + 2)
    inner = np.ones(rec.shape, bool)
    for s in (128,):
        inner[:, s - r : s + r] = False
        inner[s - r : s + r, :] = False
    inner[:r], inner[-r:], inner[:, :r], inner[:, -r:] = False, False, False, False
    np.testing.assert_allclose(out[inner], whole[inner], atol=2e-4)
    assert not np.allclose(out, whole, atol=2e-4)  # the seams really are CTU-wise


def test_default_batch_keeps_cpu_activations_under_the_budget():
    # Above glibc's mmap threshold every activation is page-faulted in again at each layer
    # (BENCHMARKS.md, "Inference"): the CPU batch keeps the largest one under 16 MiB.
    assert default_batch(tiny_rdn()) == MAX_CPU_BATCH
    rdn_s = build_model("rdn-s")  # 128 maps of 128×128 float32 = 8 MiB per CTU
    assert default_batch(rdn_s) == 2 and TiledFilter(rdn_s, 10).batch == 2
    assert default_batch(rdn_s, "cuda") == CUDA_BATCH
    assert TiledFilter(rdn_s, 10, batch=7).batch == 7


def test_bf16_close_to_fp32():
    rec = _picture(seed=2)
    model = tiny_rdn()
    a = TiledFilter(model, 10, dtype="fp32").residual(np.stack([rec, np.full_like(rec, 32)]))
    b = TiledFilter(model, 10, dtype="bf16", channels_last=True).residual(
        np.stack([rec, np.full_like(rec, 32)]))
    assert 0 < np.abs(a - b).max() < 4.0  # samples at 10 bit: bf16 really ran
    c = TiledFilter(model, 10, dtype="bf16", cast=True).residual(
        np.stack([rec, np.full_like(rec, 32)]))
    assert 0 < np.abs(a - c).max() < 4.0


def test_padded_last_batch_and_device_rounding_change_nothing():
    """A short last batch filled up to the compiled batch size (no recompilation) gives the
    same picture; the rounding and clipping CUDA does on the device (float32, round half to
    even) gives the samples of the CPU path; filter_stream is filter picture by picture."""
    rec = _picture(seed=5)  # 200×136 at CTU 64: 12 tiles, batches of 5 → a last batch of 2
    model = UnpaddedNet()
    plain = TiledFilter(model, 10, ctu=64, batch=5)
    padded = TiledFilter(model, 10, ctu=64, batch=5, pad=True)
    assert not plain.pad and padded.pad and TiledFilter(model, 10).channels_last is False
    stack = plain.stack(rec, qp=32)
    np.testing.assert_array_equal(padded.residual(stack), plain.residual(stack))
    want = plain.filter(rec, 32)
    np.testing.assert_array_equal(padded.filter(rec, 32), want)
    on_device = plain._filtered(stack)
    assert on_device.dtype == torch.int16
    np.testing.assert_array_equal(on_device.numpy().astype(np.uint16), want)
    loud = TiledFilter(UnpaddedNet(), 10, ctu=64, batch=5)  # +51 on bright samples: clips
    with torch.no_grad():
        loud.model.c2.bias.fill_(50.0)
    bright = np.clip(rec.astype(int) + 400, 0, 1023).astype(np.uint16)
    clipped = loud.filter(bright, 32)
    assert (clipped == 1023).sum() > (bright == 1023).sum()
    np.testing.assert_array_equal(loud._filtered(loud.stack(bright, 32)).numpy(), clipped)
    pics = [(rec, 32, None), (_picture(seed=6), 27, None)]
    got = list(plain.filter_stream(iter(pics)))
    for g, (r, q, _) in zip(got, pics, strict=True):
        np.testing.assert_array_equal(g, plain.filter(r, q))


def test_zero_filter_is_identity():
    rec = _picture(seed=4)
    assert np.array_equal(TiledFilter(zero_model(), 10).filter(rec, 37), rec)


# --------------------------------------------------------------------------- switching

def test_switching_per_ctu_and_frame():
    rng = np.random.default_rng(0)
    orig = _picture(seed=5)
    rec = np.clip(orig.astype(int) + rng.integers(-8, 9, orig.shape), 0, 1023).astype(np.uint16)
    filt = rec.copy()
    filt[:64, :64] = orig[:64, :64]  # better in the first CTU
    filt[64:, 64:] = 0  # much worse elsewhere
    s = switch_picture(orig, rec, filt, "ctu", ctu=64)
    assert s.on.shape == (3, 4) and s.flag_bits == 12
    assert s.on[0, 0] and s.on.sum() == 1  # equal CTUs stay off: a flag costs bits
    assert psnr(orig, s.picture, 10) >= psnr(orig, rec, 10)
    f = switch_picture(orig, rec, filt, "frame", ctu=64)
    assert f.flag_bits == 1 and not f.on.any() and np.array_equal(f.picture, rec)


# --------------------------------------------------------------------------- manifests → report

def test_zero_filter_gains_nothing(coded, tmp_path):
    from codecnn.evaluate import evaluate_manifests

    ckpt = save_checkpoint(zero_model(), tmp_path / "zero.pt")
    rep = evaluate_manifests(ckpt, coded, tmp_path / "rep", progress=False)
    o = rep["summary"]["overall"]
    assert o["gain"] == 0.0
    assert o["bd_rate_pchip"] == pytest.approx(0.0, abs=1e-9)
    assert o["bd_psnr_pchip"] == pytest.approx(0.0, abs=1e-9)
    assert o["bd_rate_cubic"] == pytest.approx(0.0, abs=1e-6)


def test_noise_filter_with_ctu_switching_is_all_off(coded, tmp_path):
    import bjontegaard as bj
    from skimage.metrics import peak_signal_noise_ratio

    from codecnn.evaluate import evaluate_manifests

    ckpt = save_checkpoint(noise_model(), tmp_path / "noise.pt")
    rep = evaluate_manifests(ckpt, coded, tmp_path / "rep", switch="ctu", progress=False)
    o = rep["summary"]["overall"]
    assert o["gain"] < -1.0  # the filter alone really hurts
    assert o["share_on"] == 0.0 and o["switch_gain"] == 0.0
    ctus = 2 * 2  # 176×144 in 128×128 CTUs
    ra, pa, rt = [], [], []
    for r in sorted(rep["results"], key=lambda r: r["qp"]):
        seq = load_manifest(coded[QPS.index(r["qp"])])
        fmt = YuvFormat(W, H, 10)
        o_, r_ = open_yuv(seq.original, fmt), open_yuv(seq.reconstruction, fmt)
        want = np.mean([peak_signal_noise_ratio(o_.luma(k), r_.luma(k), data_range=1023)
                        for k in range(FRAMES)])
        assert r["psnr_rec"] == pytest.approx(want, abs=1e-9)
        assert r["switch"]["flag_bits"] == ctus * FRAMES
        ra.append(seq.bitstream_bits * 30 / FRAMES / 1000)
        rt.append((seq.bitstream_bits + ctus * FRAMES) * 30 / FRAMES / 1000)
        pa.append(want)
    assert r["bitrate_kbps"] == pytest.approx(ra[-1])
    flag_cost = bj.bd_rate(ra, pa, rt, pa, method="pchip")
    assert flag_cost > 0
    assert o["switch_bd_rate_pchip"] == pytest.approx(flag_cost, abs=1e-4)
    assert o["switch_bd_psnr_pchip"] < 0


def test_eval_cli_writes_report(coded, tmp_path):
    ckpt = save_checkpoint(tiny_rdn(), tmp_path / "m.pt")
    out = tmp_path / "report"
    # Two manifests named, the other two found in their directories.
    proc = run_cli("eval", "--model", ckpt, "--manifest", coded[0], "--manifest", coded[1],
                   "--manifest", coded[2].parent, "--manifest", coded[3].parent, "-o", out,
                   "--switch", "ctu")
    assert proc.returncode == 0, proc.stderr
    assert "report.md" in proc.stdout and "QP" in proc.stdout
    rep = json.loads((out / "report.json").read_text())
    assert [r["qp"] for r in rep["summary"]["per_qp"]] == list(QPS)
    for name in ("rd_carphone.png", "gain_per_qp.png", "ctu_gain_map.png"):
        assert (out / name).stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "All Intra" in md and "kMAC/pixel" in md and "libvvenc" in md
    assert "from `../m.pt`" in md  # paths next to the report are shown relative to it
    assert rep["model"]["kmac_per_pixel"] > 0
    assert not list(tmp_path.glob(".report.*"))
    again = run_cli("eval", "--model", ckpt, "--manifest", coded[0], "-o", out)
    assert_one_line_error(again, "already exists")


def test_random_access_report_says_approximation(coded, tmp_path):
    from codecnn.evaluate import evaluate_manifests

    seq = load_manifest(coded[0])
    ra = save_manifest(CodedSequence(**{**seq.__dict__, "config": "ra"}), tmp_path / "ra.json")
    ckpt = save_checkpoint(tiny_rdn(), tmp_path / "m.pt")
    evaluate_manifests(ckpt, [ra], tmp_path / "rep", progress=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Random Access" in md and "approximation" in md


def test_filter_cli_copies_chroma(coded, tmp_path):
    seq = load_manifest(coded[2])
    model = tiny_rdn()
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    out = tmp_path / "out.yuv"
    proc = run_cli("filter", "--model", ckpt, "--yuv", seq.reconstruction, "--size", f"{W}x{H}",
                   "--bit-depth", "10", "--qp", "32", "-o", out)
    assert proc.returncode == 0, proc.stderr
    fmt = YuvFormat(W, H, 10)
    a, b = open_yuv(seq.reconstruction, fmt), open_yuv(out, fmt)
    assert len(b) == FRAMES
    tf = TiledFilter(model, 10)
    for k in range(FRAMES):
        np.testing.assert_array_equal(b.planes(k)[1], a.planes(k)[1])
        np.testing.assert_array_equal(b.planes(k)[2], a.planes(k)[2])
        np.testing.assert_array_equal(b.luma(k), tf.filter(np.asarray(a.luma(k)), 32))
    again = run_cli("filter", "--model", ckpt, "--yuv", seq.reconstruction, "--size",
                    f"{W}x{H}", "--bit-depth", "10", "--qp", "32", "-o", out)
    assert_one_line_error(again, "out.yuv", "already exists")
    noqp = run_cli("filter", "--model", ckpt, "--yuv", seq.reconstruction, "--size", f"{W}x{H}",
                   "--bit-depth", "10", "-o", tmp_path / "x.yuv")
    assert_one_line_error(noqp, "--qp")
    eight_bit = save_checkpoint(model, tmp_path / "m8.pt", bit_depth=8)
    wrong = run_cli("filter", "--model", eight_bit, "--yuv", seq.reconstruction, "--size",
                    f"{W}x{H}", "--bit-depth", "10", "--qp", "32", "-o", tmp_path / "y.yuv")
    assert_one_line_error(wrong, "10-bit data", "trained on 8-bit")
    assert not (tmp_path / "y.yuv").exists()


# --------------------------------------------------------------------------- shards

def test_eval_data_on_shards_matches_whole_frames(coded, tmp_path):
    from codecnn.evaluate import evaluate_manifests
    from codecnn.extract import ExtractOptions, extract_manifests

    shards = tmp_path / "shards"
    extract_manifests(list(coded), shards, ExtractOptions(progress=False))
    ckpt = save_checkpoint(tiny_rdn(), tmp_path / "m.pt")
    proc = run_cli("eval", "--model", ckpt, "--data", shards, "-o", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    rows = rep["summary"]["per_qp"]
    assert [r["qp"] for r in rows] == list(QPS)
    assert (tmp_path / "rep" / "gain_per_qp.png").is_file()
    # Every CTU of every frame is in the shards with the same 2-sample replicated border as
    # whole-frame tiling, so both paths give the same PSNR-Y, filtered and not.
    whole = evaluate_manifests(ckpt, coded, tmp_path / "whole", progress=False)
    for got, want in zip(rows, whole["summary"]["per_qp"], strict=True):
        assert got["psnr_rec"] == pytest.approx(want["psnr_rec"], abs=1e-9)
        assert got["psnr_filt"] == pytest.approx(want["psnr_filt"], abs=1e-6)
        assert got["gain"] != 0.0
    # A model that needs depth on shards without depth: one-line error.
    dckpt = save_checkpoint(tiny_rdn(("rec", "qp", "depth")), tmp_path / "depth.pt")
    bad = run_cli("eval", "--model", dckpt, "--data", shards, "-o", tmp_path / "rep2")
    assert_one_line_error(bad, "depth")


# --------------------------------------------------------------------------- bad input

def test_bad_checkpoint(coded, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    proc = run_cli("eval", "--model", junk, "--manifest", coded[0], "-o", tmp_path / "r")
    assert_one_line_error(proc, "junk.pt", "checkpoint")


def test_manifest_with_missing_files(coded, tmp_path):
    seq = load_manifest(coded[0])
    m = save_manifest(CodedSequence(**{**seq.__dict__,
                                       "reconstruction": str(tmp_path / "gone.yuv")}),
                      tmp_path / "m.json")
    ckpt = save_checkpoint(tiny_rdn(), tmp_path / "m.pt")
    proc = run_cli("eval", "--model", ckpt, "--manifest", m, "-o", tmp_path / "r")
    assert_one_line_error(proc, "gone.yuv", "missing")


def test_mismatched_sizes(coded, tmp_path):
    seq = load_manifest(coded[0])
    ckpt = save_checkpoint(tiny_rdn(), tmp_path / "m.pt")
    # A reconstruction of another size than the manifest says (not whole frames of 176×144).
    fmt = YuvFormat(160, 144, 10)
    rec = tmp_path / "rec.yuv"
    write_yuv(rec, [tuple(np.zeros(s, np.uint16) for s in fmt.plane_shapes)] * 2, fmt)
    m = save_manifest(CodedSequence(**{**seq.__dict__, "reconstruction": str(rec)}),
                      tmp_path / "m.json")
    proc = run_cli("eval", "--model", ckpt, "--manifest", m, "-o", tmp_path / "r")
    assert_one_line_error(proc, "rec.yuv", "whole number of frames")
    # A manifest claiming more frames than the files hold.
    m2 = save_manifest(CodedSequence(**{**seq.__dict__, "frames": 5}), tmp_path / "m2.json")
    proc = run_cli("eval", "--model", ckpt, "--manifest", m2, "-o", tmp_path / "r")
    assert_one_line_error(proc, "manifest says 5")
    # A model that needs depth on a manifest without a depth map.
    dckpt = save_checkpoint(tiny_rdn(("rec", "qp", "depth")), tmp_path / "d.pt")
    proc = run_cli("eval", "--model", dckpt, "--manifest", coded[0], "-o", tmp_path / "r")
    assert_one_line_error(proc, "depth")


def test_run_eval_stage_prints_table_and_report(coded, tmp_path, capsys):
    from codecnn.demo.stages import run_eval_stage

    ckpt = save_checkpoint(noise_model(), tmp_path / "m.pt")
    summary = run_eval_stage(ckpt, coded, tmp_path / "stage", switch="frame")
    out = capsys.readouterr().out
    assert "report: " in out and str(tmp_path / "stage" / "report.md") in out
    assert [r["qp"] for r in summary["per_qp"]] == list(QPS)
    # Picture switching turns a harmful filter off in every picture: 1 flag bit each.
    assert summary["overall"]["share_on"] == 0.0 and summary["overall"]["switch_gain"] == 0.0
    assert Path(summary["report_md"]).is_file()


def test_depth_model_reads_raw_depth_map(coded, tmp_path):
    from codecnn.evaluate import evaluate_manifests

    seq = load_manifest(coded[1])
    g = 4
    depth = np.random.default_rng(0).integers(0, 7, (FRAMES, H // g, W // g), np.uint8)
    dpath = tmp_path / "depth.raw"
    depth.tofile(dpath)
    m = save_manifest(CodedSequence(**{**seq.__dict__, "depth_map": str(dpath),
                                       "depth_map_format": {"kind": "raw", "granularity": g}}),
                      tmp_path / "m.json")
    model = tiny_rdn(("rec", "qp", "depth"))
    ckpt = save_checkpoint(model, tmp_path / "d.pt")
    rep = evaluate_manifests(ckpt, [m], tmp_path / "rep", progress=False)
    # The same picture through TiledFilter with the upsampled depth plane gives the same PSNR.
    fmt = YuvFormat(W, H, 10)
    o, r = open_yuv(seq.original, fmt), open_yuv(seq.reconstruction, fmt)
    tf = TiledFilter(model, 10)
    full = np.repeat(np.repeat(depth[1], g, 0), g, 1)
    f = tf.filter(np.asarray(r.luma(1)), seq.qp, full)
    assert rep["results"][0]["per_frame"][1]["psnr_filt"] == pytest.approx(
        psnr(o.luma(1), f, 10), abs=1e-9)
    # Without the depth plane the filter output differs, so the map really was used.
    g0 = tf.filter(np.asarray(r.luma(1)), seq.qp, np.zeros_like(full))
    assert not np.array_equal(f, g0)


def test_bd_averages_only_sequences_with_four_qps_and_says_which():
    from codecnn.evaluate.summary import summarise

    rows = []
    for source, qps, gain in (("A", (22, 27, 32, 37), 0.1), ("B", (22, 37), -0.5)):
        for qp in qps:
            rate, psnr = 4000.0 / 2 ** ((qp - 22) / 6), 45.0 - 0.6 * (qp - 22)
            rows.append({"source": source, "qp": qp, "bitrate_kbps": rate, "psnr_rec": psnr,
                         "psnr_filt": psnr + gain, "gain": gain})
    s = summarise(rows, switch=None)
    assert s["sequences"]["B"]["filtered"]["pchip"]["bd_rate"] is None
    assert s["overall"]["bd_sequences"] == ["A"] and s["overall"]["bd_excluded"] == ["B"]
    a = s["sequences"]["A"]["filtered"]
    assert s["overall"]["bd_rate_pchip"] == pytest.approx(a["pchip"]["bd_rate"])
    assert s["overall"]["bd_rate_cubic"] == pytest.approx(a["cubic"]["bd_rate"])
    assert s["overall"]["bd_rate_pchip"] < 0  # a PSNR gain at equal rate saves bits


def test_eval_writes_yuview_block_stats_per_sequence_and_qp(coded, tmp_path):
    """One .vtmbmsstats per (sequence, QP), readable as YUView reads it: per CTU of every
    frame the gain in milli-dB (report.json's gain map at its frame) and the on flag."""
    from yuview_format import read_like_yuview

    from codecnn.evaluate import evaluate_manifests
    from codecnn.io.sideinfo import parse_vtm_trace

    model = tiny_rdn()
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    evaluate_manifests(ckpt, coded[1:3], tmp_path / "rep", switch="ctu", progress=False)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    md = (tmp_path / "rep" / "report.md").read_text()
    tf = TiledFilter(model, 10)
    ctus = [(0, 0, 128, 128), (128, 0, 48, 128), (0, 128, 128, 16), (128, 128, 48, 16)]
    for r in rep["results"]:
        path = tmp_path / "rep" / r["block_stats"]
        assert path.name == f"carphone_qp{r['qp']}.vtmbmsstats" and f"`{path.name}`" in md
        size, types, _ = read_like_yuview(path)
        assert size == (W, H) and types["CTU_on"] == ("Flag", None)
        stats = parse_vtm_trace(path, ["CTU_gain_mdB", "CTU_on"])
        assert sorted(stats) == list(range(FRAMES))
        m = r["ctu_gain_map"]
        got = stats[m["frame"]]["CTU_gain_mdB"]
        assert [b[:4] for b in got] == ctus
        assert np.abs(np.array([b[4] for b in got]) - 1000 * np.ravel(m["db"])).max() <= 0.55
        seq = load_manifest(coded[QPS.index(r["qp"])])
        fmt = YuvFormat(W, H, 10)
        o, rec = open_yuv(seq.original, fmt), open_yuv(seq.reconstruction, fmt)
        for k in range(FRAMES):  # every frame, recomputed from the real pictures
            sw = switch_picture(o.luma(k), rec.luma(k), tf.filter(rec.luma(k), r["qp"]), "ctu")
            gain = 1000 * 10 * np.log10(sw.sse_rec / sw.sse_filt)
            assert [b[4] for b in stats[k]["CTU_gain_mdB"]] == np.rint(gain).ravel().tolist()
            assert [b[4] for b in stats[k]["CTU_on"]] == sw.on.ravel().astype(int).tolist()
        assert sum(b[4] for k in stats for b in stats[k]["CTU_on"]) == r["switch"]["on"]


# --------------------------------------------------------------------------- report figures

def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]


def test_format_gain_never_reads_a_signed_zero():
    from codecnn.evaluate.plots import format_gain, text_colour

    assert format_gain(0.0) == "0" and format_gain(-0.0) == "0"
    assert format_gain(None) == "n/a" and format_gain(float("nan")) == "n/a"
    assert format_gain(-0.004) == "\u22120.004" and format_gain(0.0049) == "+0.005"
    assert format_gain(-1e-9) == "≈0" and format_gain(-17.341) == "\u221217.34"
    assert text_colour((0.4, 0.0, 0.05)) == "white" and text_colour((0.95, 0.9, 0.9)) == "black"


def test_report_figures_read_at_a_glance(coded, tmp_path):
    """On a real report: the anchor is named by codec, ΔPSNR panel and QP labels inside the
    axes, log-rate ticks labelled, zero and missing gains told apart, gain-map labels never
    a signed zero, the map chosen and said so in its title."""
    import re

    from codecnn.evaluate import evaluate_manifests
    from codecnn.evaluate.plots import ctu_gain_map_figure, gain_per_qp_figure, rd_figure

    model = tiny_rdn()
    with torch.no_grad():  # a near-identity filter: gains of hundredths of a dB, both signs
        model.tail.weight.mul_(0.01)
        model.tail.bias.zero_()
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    rep = evaluate_manifests(ckpt, coded, tmp_path / "rep", switch="ctu", progress=False)
    results = rep["results"]

    fig = rd_figure("carphone", results, "ctu")
    ax, dax = fig.axes
    assert "anchor: VVC (libvvenc) reconstruction" in [t.get_text() for t in ax.get_legend()
                                                       .get_texts()]
    hevc = [{**r, "codec": "hevc"} for r in results]
    legend = " ".join(t.get_text() for t in rd_figure("x", hevc).axes[0].get_legend().get_texts())
    assert "HEVC (libx265)" in legend and "VVC" not in legend
    assert "ΔPSNR" in dax.get_ylabel()
    fig.canvas.draw()
    box = ax.get_window_extent()
    qp_labels = [t for t in ax.texts if t.get_text().startswith("QP")]
    assert len(qp_labels) == len(QPS)
    for t in qp_labels:  # no label cut by the frame
        e = t.get_window_extent()
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1
    ticks = [t.get_text() for t in dax.xaxis.get_majorticklabels() + dax.xaxis.get_minorticklabels()
             if t.get_text() and dax.get_xlim()[0] <= t.get_position()[0] <= dax.get_xlim()[1]]
    assert len(ticks) >= 3, ticks
    # rates spanning most of a decade (bigbuckbunny's 2,800-14,500 kbit/s): no two tick
    # labels overlap (7000/8000/9000/10000 once ran together)
    wide = [{**r, "bitrate_kbps": k, "switch": {**r["switch"], "bitrate_kbps": k * 1.001}}
            for r, k in zip(sorted(results, key=lambda r: r["bitrate_kbps"]),
                            (2800, 5200, 9000, 14500), strict=True)]
    dax = rd_figure("wide", wide, "ctu").axes[1]
    dax.figure.canvas.draw()
    boxes = sorted((t.get_window_extent() for t in dax.xaxis.get_majorticklabels()
                    + dax.xaxis.get_minorticklabels()
                    if t.get_text() and dax.get_xlim()[0] <= t.get_position()[0]
                    <= dax.get_xlim()[1]), key=lambda e: e.x0)
    assert len(boxes) >= 3
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False)), boxes

    per_qp = [dict(r) for r in rep["summary"]["per_qp"]]
    per_qp[0]["gain"], per_qp[1]["switch_gain"] = None, 0.0
    texts = _texts(gain_per_qp_figure(per_qp, "ctu"))
    assert "n/a" in texts and "0" in texts

    negative_zero = re.compile(r"^[-\u2212]0(\.0*)?$")
    fig = ctu_gain_map_figure(results)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) == 4 and not any(negative_zero.match(s) for s in labels)
    assert "widest CTU spread of 4 maps" in ax.get_title()
    fig = ctu_gain_map_figure(results, choose=("carphone", 37))
    assert "QP 37" in fig.axes[0].get_title() and "as chosen" in fig.axes[0].get_title()
    zeroed = [{**r, "ctu_gain_map": {**r["ctu_gain_map"], "db": [[-1e-6, 0.0], [0.0, 2.0]]}}
              for r in results[:1]]
    labels = [t.get_text() for t in ctu_gain_map_figure(zeroed).axes[0].texts]
    assert labels == ["≈0", "0", "0", "+2.00"]
