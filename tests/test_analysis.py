"""analyze satd / correlation / weights on tiny schema-conforming shards written with h5py.

The residual noise of each CTU has variance ALPHA·QP + BETA·mean_depth (+ a little jitter),
so the MSE really depends on QP and depth in a known way.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.stats
from conftest import assert_one_line_error, run_cli

from codecnn.analysis.correlation import analyze_correlation, pearson, spearman
from codecnn.analysis.ctu_data import load_ctu_table
from codecnn.analysis.satd_ranking import (
    candidate_predictions,
    dc_heavy_example,
    rank_statistics,
    satd_report,
)
from codecnn.analysis.weights import analyze_weights, closed_form
from codecnn.errors import DataError
from codecnn.io.shard import META_DTYPE

CTU, BORDER = 32, 2
ALPHA, BETA = 3.0, 40.0


def write_shard(path, qp, n, *, depth=True, seed=0, constant_residual=None, edge_every=5,
                slice_offsets=(0,)):
    """A shard of n CTUs (ctu_size 32, border 2) at nominal QP `qp`, schema of io/shard.py;
    CTU i is coded at slice QP qp + slice_offsets[i % len] (a B picture when non-zero, as in
    Random Access)."""
    rng = np.random.default_rng(seed)
    p = CTU + 2 * BORDER
    yy, xx = np.mgrid[0:p, 0:p]
    rec = np.empty((n, p, p), np.uint16)
    orig = np.empty((n, CTU, CTU), np.uint16)
    dep = np.empty((n, p, p), np.uint8)
    meta = np.zeros(n, META_DTYPE)
    for i in range(n):
        base = 300 + 200 * np.sin(xx / rng.uniform(3, 9) + yy / rng.uniform(3, 9) + i)
        rec[i] = np.clip(base + rng.normal(0, 5, (p, p)), 0, 1023).round()
        quads = rng.integers(0, 5, size=(2, 2))  # CU depth per quadrant
        dep[i] = np.kron(quads, np.ones((p // 2, p // 2), np.uint8))[:p, :p]
        vw = vh = CTU
        if edge_every and i % edge_every == edge_every - 1:  # a CTU cut by the picture edge
            vw, vh = 24, 16
        mean_depth = dep[i, BORDER:BORDER + vh, BORDER:BORDER + vw].mean()
        sqp = qp + slice_offsets[i % len(slice_offsets)]
        var = ALPHA * sqp + BETA * mean_depth + rng.normal(0, 3)
        noise = rng.normal(0, np.sqrt(max(var, 1.0)), (CTU, CTU))
        if constant_residual is not None:
            noise = np.full((CTU, CTU), float(constant_residual))
        centre = rec[i, BORDER:-BORDER, BORDER:-BORDER].astype(float)
        orig[i] = np.clip(centre + noise, 0, 1023).round()
        if (vw, vh) != (CTU, CTU):
            orig[i, vh:, :] = 1023  # garbage outside the valid area must not be scored
            orig[i, :, vw:] = 0
        meta[i] = (b"synthetic", i // 4, (i % 4) * CTU, (i // 4) * CTU, sqp, qp,
                   b"B" if sqp != qp else b"I", vw, vh)
    with h5py.File(path, "w") as f:
        f["rec"], f["orig"], f["meta"] = rec, orig, meta
        f["qp"] = np.full((n, p, p), qp, np.uint8)
        if depth:
            f["depth"] = dep
        f.attrs.update({"format_version": 1, "bit_depth": 10, "ctu_size": CTU,
                        "border": BORDER, "has_depth": depth, "sequence": "synthetic",
                        "nominal_qp": qp, "codec": "vvc", "config": "ai", "source": "{}",
                        "settings": "{}", "codecnn_version": "test"})
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    for k, qp in enumerate((22, 27, 32, 37)):
        write_shard(d / f"synthetic_qp{qp}.h5", qp, 40, seed=k)
    return d


@pytest.fixture(scope="module")
def shards_no_depth(tmp_path_factory):
    d = tmp_path_factory.mktemp("nodepth")
    for k, qp in enumerate((22, 37)):
        write_shard(d / f"synthetic_qp{qp}.h5", qp, 20, depth=False, seed=k)
    return d


def test_ctu_table_scores_only_the_valid_area(shards):
    t = load_ctu_table(shards, progress=False)
    assert t.n == 160 and t.has_depth and t.bit_depth == 10
    with h5py.File(shards / "synthetic_qp27.h5", "r") as f:
        orig, rec, dep, meta = f["orig"][4], f["rec"][4], f["depth"][4], f["meta"][4]
    vw, vh = int(meta["valid_w"]), int(meta["valid_h"])
    assert (vw, vh) == (24, 16)
    res = orig[:vh, :vw].astype(float) - rec[BORDER:BORDER + vh, BORDER:BORDER + vw]
    i = 40 + 4  # second shard in sorted order (qp22, qp27, ...), row 4
    assert t.nominal_qp[i] == 27
    assert t.mse[i] == pytest.approx((res**2).mean())
    assert t.mean_depth[i] == pytest.approx(dep[BORDER:BORDER + vh, BORDER:BORDER + vw].mean())


def test_pearson_and_spearman_equal_scipy():
    rng = np.random.default_rng(1)
    for n in (5, 40, 3000):
        x = rng.integers(22, 38, n).astype(float)
        y = 1e4 + 3 * x + rng.normal(0, 10, n)  # large offset: tests the numerics too
        ours, ref = pearson(x, y), scipy.stats.pearsonr(x, y)
        assert ours.r == pytest.approx(ref.statistic, abs=1e-12)
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
        ci = ref.confidence_interval(0.95)
        assert (ours.ci_low, ours.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
        s, sref = spearman(x, y), scipy.stats.spearmanr(x, y)
        assert s.rho == pytest.approx(sref.statistic, abs=1e-12)
        assert s.p == pytest.approx(sref.pvalue, rel=1e-8, abs=1e-300)


def test_correlation_finds_the_built_in_dependence(shards):
    t = load_ctu_table(shards, progress=False)
    res = analyze_correlation(t)
    allg = res["groups"]["all"]
    assert allg["qp_vs_mse"]["pearson_r"] > 0.35  # expected ≈ 0.5 by construction
    assert allg["depth_vs_mse"]["pearson_r"] > 0.7  # expected ≈ 0.85
    # within one nominal QP the slice QP is constant: undefined, said so, never NaN
    g = res["groups"]["QP32"]
    assert "constant" in g["qp_vs_mse"]["undefined"]
    assert g["depth_vs_mse"]["pearson_r"] > 0.5
    assert res["depth_note"] is None


def test_weights_search_reaches_closed_form(shards):
    t = load_ctu_table(shards, progress=False)
    res = analyze_weights(t, a_bounds=(0.0, 10.0), b_bounds=(0.0, 100.0), init_points=5,
                          n_iter=20, seed=0)
    cf = res["closed_form"]
    # the OLS direction is the one the data were built with
    assert cf["a_over_b"] == pytest.approx(ALPHA / BETA, rel=0.35)
    assert abs(res["bo_free"]["corr"] - cf["R"]) < 1e-3
    assert res["bo_free"]["corr"] <= cf["R"] + 1e-12  # nothing beats the closed form
    assert abs(res["bo_b1"]["corr"] - cf["R"]) < 1e-3  # a = coef ratio lies inside [0, 10]
    assert cf["b1_reachable"]
    # closed form R equals the correlation of the OLS fit computed independently
    A = np.column_stack([np.ones(t.n), t.slice_qp, t.mean_depth])
    beta = np.linalg.lstsq(A, t.mse, rcond=None)[0]
    assert cf["R"] == pytest.approx(scipy.stats.pearsonr(A @ beta, t.mse).statistic)
    assert closed_form(t.slice_qp.astype(float), t.mean_depth, t.mse)["R"] == cf["R"]


def test_dc_heavy_example_ranks_as_the_note_says():
    ex = dc_heavy_example()
    flat100, checker, flat450 = ex["candidates"]
    # SSE: the DC-heavy residual is an order of magnitude worse ...
    assert flat100["sse"] > 10 * checker["sse"]
    # ... while both transform costs rank it no worse than the textured prediction
    for m in ("hadamard", "dct", "dct_int"):
        assert flat100[m] <= checker[m]
    assert 0.5 < flat100["hadamard"] / checker["hadamard"] < 2  # "similar" Hadamard cost
    # the quarter-DC rule (JVET-R0164) is what makes it cheap: without it the order flips
    assert flat100["hadamard_no_dc_scaling"] > checker["hadamard_no_dc_scaling"]
    assert flat450["sse"] < checker["sse"] and flat450["hadamard"] < checker["hadamard"]


def test_candidate_predictions_follow_the_formulas():
    rng = np.random.default_rng(7)
    rec = rng.integers(0, 1024, size=(2, 16 + 4, 24 + 4))  # 2×3 blocks of 8, border 2
    preds = candidate_predictions(rec, 2, 16, 24, 8)
    assert preds.shape == (5, 2, 16, 24)
    for k in range(2):
        r = rec[k]
        for by in range(2):
            for bx in range(3):
                y0, x0 = 2 + 8 * by, 2 + 8 * bx
                top, left = r[y0 - 1, x0 : x0 + 8], r[y0 : y0 + 8, x0 - 1]
                tr, bl = r[y0 - 1, x0 + 8], r[y0 + 8, x0 - 1]
                want = {
                    0: r[y0 : y0 + 8, x0 : x0 + 8],
                    1: np.full((8, 8), (top.sum() + left.sum() + 8) >> 4),
                    2: np.array([[((7 - x) * left[y] + (x + 1) * tr + (7 - y) * top[x]
                                   + (y + 1) * bl + 8) >> 4 for x in range(8)]
                                 for y in range(8)]),
                    3: np.repeat(left[:, None], 8, axis=1),
                    4: np.repeat(top[None, :], 8, axis=0),
                }
                for c, w in want.items():
                    got = preds[c, k, 8 * by : 8 * by + 8, 8 * bx : 8 * bx + 8]
                    np.testing.assert_array_equal(got, w, err_msg=f"candidate {c}")


def test_rank_statistics_counts_disagreements():
    # 3 candidates, 4 blocks; metric b reverses metric a's order in blocks 2 and 3
    a = np.array([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]], float)
    b = np.array([[1, 1, 3, 3], [2, 2, 2, 2], [3, 3, 1, 1]], float)
    st = rank_statistics({"hadamard": a, "sse": b})
    p = st["pairs"]["hadamard~sse"]
    assert p["best_disagreement"] == 0.5
    assert p["pair_disagreement"] == 0.5  # 6 of 12 candidate pairs reversed
    assert p["mean_block_spearman"] == pytest.approx(0.0)


def test_satd_analysis_on_shards_and_yuv(shards, tmp_path):
    res = satd_report(tmp_path / "s", data=[shards], block=8, progress=False)
    js = json.loads((tmp_path / "s" / "satd.json").read_text())
    assert (tmp_path / "s" / "satd.png").stat().st_size > 0
    # 160 CTUs × 16 blocks, minus the blocks outside the valid area of the 32 edge CTUs
    assert js["ranking"]["blocks"] == 128 * 16 + 32 * 6
    pairs = js["ranking"]["pairs"]
    assert pairs["dct~dct_int"]["best_disagreement"] < 0.05  # near-identical transforms
    assert 0 <= pairs["hadamard~sse"]["pair_disagreement"] <= 1
    assert "Hadamard" in res["table"]
    # the same orig/rec as a raw YUV pair (8-bit, 64x32): whole frame, 1-sample padding
    rng = np.random.default_rng(2)
    o = rng.integers(0, 256, (2, 32, 64)).astype(np.uint8)
    r = np.clip(o + rng.integers(-9, 10, o.shape), 0, 255).astype(np.uint8)
    for name, arr in (("o_64x32.yuv", o), ("r_64x32.yuv", r)):
        with open(tmp_path / name, "wb") as f:
            for frame in arr:
                f.write(frame.tobytes() + np.full(2 * 16 * 32, 128, np.uint8).tobytes())
    res = satd_report(tmp_path / "y", rec=tmp_path / "r_64x32.yuv",
                            orig=tmp_path / "o_64x32.yuv", block=8, progress=False)
    assert res["ranking"]["blocks"] == 2 * 4 * 8
    proc = run_cli("analyze", "satd", "--rec", tmp_path / "r_64x32.yuv", "--orig",
                   tmp_path / "o_64x32.yuv", "--block", "16", "-o", tmp_path / "c", check=True)
    assert "DC-heavy example" in proc.stdout
    js = json.loads((tmp_path / "c" / "satd.json").read_text())
    assert js["block"] == 16 and js["ranking"]["blocks"] == 2 * 2 * 4
    proc = run_cli("analyze", "satd", "--rec", tmp_path / "r_64x32.yuv", "--orig",
                   tmp_path / "missing_64x32.yuv", "-o", tmp_path / "d")
    assert_one_line_error(proc, "missing_64x32.yuv", "no such file")
    proc = run_cli("analyze", "satd", "--rec", tmp_path / "r_64x32.yuv", "--orig",
                   tmp_path / "o_64x32.yuv", "-o", tmp_path / "c")  # the one rule
    assert_one_line_error(proc, "satd.json exists", "--overwrite")
    run_cli("analyze", "satd", "--rec", tmp_path / "r_64x32.yuv", "--orig",
            tmp_path / "o_64x32.yuv", "--overwrite", "-o", tmp_path / "c", check=True)


def test_cli_correlation_and_weights(shards, tmp_path):
    proc = run_cli("analyze", "correlation", "--data", shards, "-o", tmp_path, check=True)
    assert "QP vs MSE" in proc.stdout and "depth vs MSE" in proc.stdout
    js = json.loads((tmp_path / "correlation.json").read_text())
    assert js["groups"]["all"]["n"] == 160
    assert (tmp_path / "correlation.png").stat().st_size > 0
    proc = run_cli("analyze", "weights", "--data", shards, "--iterations", "3",
                   "--init-points", "2", "--a-bounds", "0", "10", "--b-bounds", "0", "100",
                   "-o", tmp_path, check=True)
    assert "closed form" in proc.stdout
    js = json.loads((tmp_path / "weights.json").read_text())
    assert js["bo_free"]["evaluations"] == 5 and js["bounds"]["b"] == [0.0, 100.0]
    assert (tmp_path / "weights.png").stat().st_size > 0


def test_cli_correlation_without_depth_says_so(shards_no_depth, tmp_path):
    proc = run_cli("analyze", "correlation", "--data", shards_no_depth, "-o", tmp_path,
                   check=True)
    assert "depth is absent" in proc.stdout
    js = json.loads((tmp_path / "correlation.json").read_text())
    assert js["has_depth"] is False and "depth_vs_mse" not in js["groups"]["all"]
    assert "nan" not in (tmp_path / "correlation.json").read_text().lower()


def test_cli_bad_input(shards, shards_no_depth, tmp_path):
    proc = run_cli("analyze", "weights", "--data", shards_no_depth, "-o", tmp_path)
    assert_one_line_error(proc, "synthetic_qp22.h5", "no CU depth")
    proc = run_cli("analyze", "correlation", "--data", shards, "--qp", "99", "-o", tmp_path)
    assert_one_line_error(proc, "no CTUs with nominal QP in [99]")
    const = tmp_path / "const"
    const.mkdir()
    write_shard(const / "c_qp22.h5", 22, 8, constant_residual=7, edge_every=0)
    write_shard(const / "c_qp37.h5", 37, 8, constant_residual=7, edge_every=0, seed=3)
    proc = run_cli("analyze", "correlation", "--data", const, "-o", tmp_path / "c")
    assert_one_line_error(proc, "residual MSE is constant", "undefined")
    assert not (tmp_path / "c" / "correlation.json").exists()
    with pytest.raises(DataError, match="MSE is constant"):
        analyze_weights(load_ctu_table(const, progress=False), init_points=1, n_iter=0)
    proc = run_cli("analyze", "weights", "--data", shards, "--qp", "23,24", "-o", tmp_path)
    assert_one_line_error(proc, "no CTUs with nominal QP in [23, 24]")
    proc = run_cli("analyze", "satd", "-o", tmp_path / "s")
    assert_one_line_error(proc, "--data SHARDS", "--rec")
    proc = run_cli("analyze", "correlation", "--data", tmp_path / "missing", "-o", tmp_path)
    assert_one_line_error(proc, "missing", "no such file")


def test_correlation_figure_colours_by_slice_qp_and_fits_no_line_across_a_nominal_qp(tmp_path):
    """Random Access: B pictures at slice QP 41 under nominal QP 32 are coloured 41, the
    legend gives each nominal QP's slice QP range, and no line spans one nominal QP's CTUs."""
    from codecnn.analysis.correlation import correlation_figure

    for k, qp in enumerate((22, 32)):
        write_shard(tmp_path / f"ra_qp{qp}.h5", qp, 40, seed=k, slice_offsets=(0, 3, 9))
    t = load_ctu_table(tmp_path, progress=False)
    fig = correlation_figure(t, analyze_correlation(t))
    qp_ax, depth_ax = fig.axes[:2]
    coloured = np.concatenate([c.get_array() for c in qp_ax.collections])
    assert sorted(set(coloured.tolist())) == [22, 25, 31, 32, 35, 41]
    labels = [x.get_text() for x in qp_ax.get_legend().get_texts()]
    assert "nominal QP 32: slice QP 32–41 (offset +0…+9)" in labels
    solid = [ln for ln in qp_ax.get_lines() if ln.get_linestyle() == "-"]
    assert not solid  # against slice QP only the one dashed line over all CTUs
    for ln in depth_ax.get_lines():  # depth lines: one slice QP each, none over all CTUs
        assert ln.get_linestyle() == "-"
    assert len(depth_ax.get_lines()) == 6


def test_weights_figure_is_scale_free_and_marks_the_optimum(shards):
    from codecnn.analysis.weights import corr_at_angle, standard_angle, weights_figure

    t = load_ctu_table(shards, progress=False)
    res = analyze_weights(t, init_points=2, n_iter=2)
    m, cf = res["moments"], res["closed_form"]
    opt = float(standard_angle(cf["coef_qp"], cf["coef_depth"], m))
    th = np.linspace(-180, 180, 3601)
    c = corr_at_angle(th, m)
    assert c.max() == pytest.approx(cf["R"], abs=1e-6)  # the curve peaks at the optimum
    assert th[np.argmax(c)] == pytest.approx(opt, abs=0.2)
    # the same correlation as the raw weights give, for any scale
    a, b = 2.0, 30.0
    assert float(corr_at_angle(np.array([standard_angle(a, b, m)]), m)[0]) == pytest.approx(
        pearson(a * t.slice_qp + b * t.mean_depth, t.mse).r, abs=1e-9)
    ax = weights_figure(res).axes[0]
    assert ax.get_xlim() == (-180.0, 180.0)
    assert any(x.get_text().startswith("optimum (OLS): a/b = ")
               for x in ax.get_legend().get_texts())


def test_satd_figure_says_what_the_rate_and_the_candidates_are(shards, tmp_path):
    from codecnn.analysis.satd_ranking import analyze_blocks, iter_shard_blocks, satd_figure

    metrics = analyze_blocks(iter_shard_blocks([shards], None, False), 8)
    result = {"block": 8, "ranking": rank_statistics(metrics),
              "dc_heavy_example": dc_heavy_example()}
    fig = satd_figure(metrics, result)
    assert fig.axes[0].get_ylabel() != "rate"
    legend = " ".join(x.get_text() for x in fig.axes[0].get_legend().get_texts())
    assert "% of blocks" in legend and "% of pairs" in legend
    caption = " ".join(x.get_text() for x in fig.texts)
    for word in ("reconstruction", "DC", "planar", "horizontal", "vertical"):
        assert word in caption
