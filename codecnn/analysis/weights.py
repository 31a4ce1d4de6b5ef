"""Which mix of QP and CU depth best tracks the CTU residual MSE?

Bayesian optimisation (the `bayesian-optimization` package) of w = a·QP + b·mean_depth
maximising Pearson corr(w, MSE), once with (a, b) free and once with b fixed to 1. Since
corr(w, MSE) only depends on the direction of (a, b), its maximum has a closed form: the
multiple correlation R of the ordinary least-squares fit MSE ~ QP + depth, reached at
(a, b) ∝ the OLS coefficients. Both are reported so the reader sees how close the search came.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codecnn.analysis.correlation import UndefinedCorrelation, pearson, pearson_r
from codecnn.analysis.ctu_data import CtuTable, load_ctu_table
from codecnn.analysis.outputs import markdown_table, pyplot, save_figure, write_json
from codecnn.errors import DataError

UNDEFINED_SCORE = -1.0  # objective value where w is constant (a = b = 0): the worst corr


def weighted_corr(a: float, b: float, qp: np.ndarray, depth: np.ndarray,
                  mse: np.ndarray) -> float:
    """corr(a·QP + b·depth, MSE); UNDEFINED_SCORE when the weighted sum is constant."""
    w = a * qp + b * depth
    if np.all(w == w[0]):
        return UNDEFINED_SCORE
    return pearson_r(w, mse)


def closed_form(qp: np.ndarray, depth: np.ndarray, mse: np.ndarray) -> dict[str, Any]:
    """OLS of MSE on [1, QP, depth]: coefficients and the multiple correlation R.

    R = corr(fitted, MSE) = max over (a, b) of corr(a·QP + b·depth, MSE).
    """
    X = np.column_stack([np.ones_like(qp), qp, depth]).astype(np.float64)
    if np.linalg.matrix_rank(X) < 3:
        raise DataError("QP and mean depth are collinear (or one is constant) in these data: "
                        "the two weights cannot be told apart")
    coef, *_ = np.linalg.lstsq(X, mse, rcond=None)
    fitted = X @ coef
    r_mult = pearson_r(fitted, mse)
    return {"R": float(r_mult), "R2": float(r_mult**2), "intercept": float(coef[0]),
            "coef_qp": float(coef[1]), "coef_depth": float(coef[2]),
            "a_over_b": float(coef[1] / coef[2]) if coef[2] != 0 else None}


def bo_search(qp: np.ndarray, depth: np.ndarray, mse: np.ndarray, *,
              a_bounds: tuple[float, float], b_bounds: tuple[float, float] | None,
              init_points: int, n_iter: int, seed: int) -> dict[str, Any]:
    """Maximise corr(a·QP + b·depth, MSE) with Bayesian optimisation; b_bounds None fixes b=1.

    Returns the best (a, b, corr) and every evaluated point (for the plot).
    """
    import contextlib
    import io

    from bayes_opt import BayesianOptimization, acquisition

    class _LeanUCB(acquisition.UpperConfidenceBound):
        """UCB whose inner maximisation samples 2000 points and polishes 2 with L-BFGS-B
        (the package default is 10 000 and 10): ample for 1-2 parameters, 4× faster."""

        def suggest(self, gp, target_space, n_random=2000, n_smart=2, fit_gp=True,
                    random_state=None):
            return super().suggest(gp, target_space, n_random=min(n_random, 2000),
                                   n_smart=min(n_smart, 2), fit_gp=fit_gp,
                                   random_state=random_state)

    qp = qp.astype(np.float64)
    depth = depth.astype(np.float64)
    mse = mse.astype(np.float64)
    if b_bounds is None:
        def f(a: float) -> float:
            return weighted_corr(a, 1.0, qp, depth, mse)
        pbounds = {"a": a_bounds}
    else:
        def f(a: float, b: float) -> float:
            return weighted_corr(a, b, qp, depth, mse)
        pbounds = {"a": a_bounds, "b": b_bounds}
    opt = BayesianOptimization(f=f, pbounds=pbounds, random_state=seed, verbose=0,
                               allow_duplicate_points=True,
                               acquisition_function=_LeanUCB(kappa=2.576))
    # the package prints a line per re-probed point (e.g. on a bound) to stdout: keep it quiet
    with contextlib.redirect_stdout(io.StringIO()):
        opt.maximize(init_points=init_points, n_iter=n_iter)
    best = opt.max
    b = 1.0 if b_bounds is None else float(best["params"]["b"])
    return {
        "a": float(best["params"]["a"]), "b": b, "corr": float(best["target"]),
        "evaluations": init_points + n_iter, "b_fixed": b_bounds is None,
        "points": [[float(r["params"]["a"]), float(r["params"].get("b", 1.0)),
                    float(r["target"])] for r in opt.res],
    }


def analyze_weights(table: CtuTable, *, a_bounds=(-10.0, 10.0), b_bounds=(-10.0, 10.0),
                    init_points: int = 8, n_iter: int = 40, seed: int = 0) -> dict[str, Any]:
    """BO (free b and b = 1) next to the closed-form optimum, on one CtuTable."""
    if not table.has_depth:
        raise DataError(f"{table.depth_missing_in[0]}: no CU depth in the shard "
                        "(has_depth=False); the QP/depth weighting needs depth")
    for lo, hi in (a_bounds, b_bounds):
        if not lo < hi:
            raise DataError(f"bounds must be LOW < HIGH, got {lo} {hi}")
    if init_points < 1 or n_iter < 0:
        raise DataError("need at least 1 initial point and a non-negative iteration count")
    qp, d, mse = table.slice_qp.astype(np.float64), table.mean_depth, table.mse
    if np.all(mse == mse[0]):
        raise DataError(f"residual MSE is constant ({mse[0]:g}) over {table.n} CTUs: "
                        "no weighting can correlate with it")
    cf = closed_form(qp, d, mse)
    single = {}
    for name, x in (("qp", qp), ("depth", d)):
        try:
            single[name] = pearson(x, mse).r
        except UndefinedCorrelation as e:
            single[name] = None
            single[f"{name}_undefined"] = str(e)
    free = bo_search(qp, d, mse, a_bounds=a_bounds, b_bounds=b_bounds,
                     init_points=init_points, n_iter=n_iter, seed=seed)
    fixed = bo_search(qp, d, mse, a_bounds=a_bounds, b_bounds=None,
                      init_points=init_points, n_iter=n_iter, seed=seed)
    # the closed-form optimum with b = 1: a = coef_qp / coef_depth, reachable only when the
    # depth coefficient is positive and that ratio lies inside the bounds
    ratio = cf["a_over_b"]
    reachable = (cf["coef_depth"] > 0 and ratio is not None
                 and a_bounds[0] <= ratio <= a_bounds[1])
    cf["b1_optimum_a"] = ratio if reachable else None
    cf["b1_reachable"] = bool(reachable)
    for res in (free, fixed):
        res["gap_to_closed_form"] = cf["R"] - res["corr"]
    return {
        "n_ctus": table.n, "bit_depth": table.bit_depth, "shards": list(table.shards),
        "bounds": {"a": list(a_bounds), "b": list(b_bounds)},
        "init_points": init_points, "n_iter": n_iter, "seed": seed,
        "single": single, "closed_form": cf, "bo_free": free, "bo_b1": fixed,
        "moments": _moments(qp, d, mse),
    }


def _moments(qp, d, mse) -> dict[str, float]:
    c = np.cov(np.vstack([qp, d, mse]))
    return {"var_qp": c[0, 0], "var_depth": c[1, 1], "var_mse": c[2, 2], "cov_qp_depth": c[0, 1],
            "cov_qp_mse": c[0, 2], "cov_depth_mse": c[1, 2]}


def weights_table(result: dict[str, Any]) -> str:
    cf, free, fixed = result["closed_form"], result["bo_free"], result["bo_b1"]
    rows = [
        ["closed form (OLS, multiple R)", cf["coef_qp"], cf["coef_depth"], cf["R"], 0.0],
        [f"Bayesian opt., a and b free ({free['evaluations']} evals)", free["a"], free["b"],
         free["corr"], free["gap_to_closed_form"]],
        [f"Bayesian opt., b = 1 ({fixed['evaluations']} evals)", fixed["a"], 1.0,
         fixed["corr"], fixed["gap_to_closed_form"]],
    ]
    for name in ("qp", "depth"):
        r = result["single"][name]
        rows.append([f"{'QP' if name == 'qp' else 'depth'} alone", 1.0 if name == "qp" else 0.0,
                     0.0 if name == "qp" else 1.0, r if r is not None else None,
                     (cf["R"] - r) if r is not None else None])
    text = markdown_table(["w = a·QP + b·depth", "a", "b", "corr(w, MSE)", "below optimum"],
                          rows)
    if cf["b1_reachable"]:
        text += f"\nwith b = 1 the closed-form optimum is a = {cf['b1_optimum_a']:.4g}"
    else:
        text += "\nwith b = 1 the closed-form optimum is not reachable inside the bounds"
    return text


def plot_weights(result: dict[str, Any], path: Path) -> Path:
    """weights_figure saved as PNG."""
    return save_figure(weights_figure(result), path)


def standard_angle(a, b, m: dict[str, float]):
    """θ = atan2(b·σ_depth, a·σ_QP) in degrees: the direction of the weights in units of
    each variable's standard deviation."""
    return np.degrees(np.arctan2(np.asarray(b) * np.sqrt(m["var_depth"]),
                                 np.asarray(a) * np.sqrt(m["var_qp"])))


def corr_at_angle(theta_deg: np.ndarray, m: dict[str, float]) -> np.ndarray:
    """corr(a·QP + b·depth, MSE) at the standardised direction θ (see standard_angle).

    The correlation does not change when (a, b) is scaled by a positive number, so one
    angle is all there is to plot; measuring it on standardised variables makes it free of
    the units too (raw QP varies by tens, depth by about one, which squeezes every change
    of the raw angle into a cliff near ±90°).
    """
    t = np.radians(theta_deg)
    a, b = np.cos(t) / np.sqrt(m["var_qp"]), np.sin(t) / np.sqrt(m["var_depth"])
    var_w = a**2 * m["var_qp"] + 2 * a * b * m["cov_qp_depth"] + b**2 * m["var_depth"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * m["cov_qp_mse"] + b * m["cov_depth_mse"]) / np.sqrt(var_w * m["var_mse"])


_RATIOS = (-10, -3, -1, -0.3, -0.1, 0, 0.1, 0.3, 1, 3, 10)  # a/b on the top axis


def weights_figure(result: dict[str, Any]):
    """corr(w, MSE) against the standardised direction θ of the weights (a/b on top), the
    BO samples of both searches on the curve and the closed-form optimum marked; the right
    panel zooms on the optimum, where the searches' gaps show."""
    plt = pyplot()
    m, cf = result["moments"], result["closed_form"]
    free, fixed = result["bo_free"], result["bo_b1"]
    opt = float(standard_angle(cf["coef_qp"], cf["coef_depth"], m))
    ratio = f"{cf['a_over_b']:.3g}" if cf["a_over_b"] is not None else "∞"
    pf, p1 = np.array(free["points"]), np.array(fixed["points"])
    th_free = standard_angle(pf[:, 0], pf[:, 1], m)
    th_b1 = standard_angle(p1[:, 0], 1.0, m)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained",
                                   gridspec_kw={"width_ratios": (1.6, 1)})
    alo, ahi = result["bounds"]["a"]
    for ax, (lo, hi) in ((ax0, (-180.0, 180.0)), (ax1, (opt - 12.0, opt + 12.0))):
        th = np.linspace(lo, hi, 721)
        ax.plot(th, corr_at_angle(th, m), "k-", lw=1.2, label="corr(w, MSE)")
        # b = 1 with a in its bounds reaches only these directions
        ax.axvspan(float(standard_angle(ahi, 1.0, m)), float(standard_angle(alo, 1.0, m)),
                   color="tab:orange", alpha=0.08, label=f"reachable with b = 1, a in "
                   f"[{alo:g}, {ahi:g}]")
        ax.scatter(th_free, pf[:, 2], s=18, c="white", edgecolors="tab:blue", zorder=3,
                   label=f"BO samples, a and b free ({len(pf)})")
        ax.scatter(th_b1, p1[:, 2], s=14, marker="x", c="tab:orange", zorder=3,
                   label=f"BO samples, b = 1 ({len(p1)})")
        ax.axvline(opt, color="r", ls="--", lw=1)
        ax.plot(opt, cf["R"], "r*", ms=14, zorder=4,
                label=f"optimum (OLS): a/b = {ratio}, θ = {opt:.1f}°, R = {cf['R']:.4f}")
        ax.set_xlim(lo, hi)
        ax.set_ylabel("corr(a·QP + b·depth, MSE)")
        ax.grid(alpha=0.3)
    ax0.set_xticks(np.arange(-180, 181, 45))
    ax0.set_xlabel("direction of the weights θ = atan2(b·σ_depth, a·σ_QP) (degrees)")
    for th, text in ((0.0, "QP alone"), (90.0, "depth alone")):
        ax0.annotate(text, (th, float(corr_at_angle(np.array([th]), m)[0])), fontsize=7,
                     textcoords="offset points", xytext=(4, -12), color="0.3")
    top = ax0.secondary_xaxis("top")
    ratio_ticks = [float(standard_angle(r, 1.0, m)) for r in _RATIOS]  # b = 1: a/b = a
    keep = [0] + [i for i in range(1, len(_RATIOS))
                  if abs(ratio_ticks[i] - ratio_ticks[i - 1]) > 6]  # no overprinting
    top.set_xticks([ratio_ticks[i] for i in keep], [f"{_RATIOS[i]:g}" for i in keep],
                   fontsize=7)
    top.set_xlabel("a/b (for b > 0)", fontsize=8)
    ax0.legend(fontsize=7, loc="best")
    ax0.set_title("w = a·QP + b·depth: the correlation depends only on the direction",
                  fontsize=10)
    ax1.set_xlabel("θ (degrees), near the optimum")
    ax1.set_title(f"zoom: below the optimum by {free['gap_to_closed_form']:.2g} (free) and "
                  f"{fixed['gap_to_closed_form']:.2g} (b = 1)", fontsize=10)
    ys = corr_at_angle(np.linspace(opt - 12, opt + 12, 97), m)
    ys = ys[np.isfinite(ys)]
    if ys.size:
        pad = max(float(cf["R"] - ys.min()), 1e-4) * 0.15
        ax1.set_ylim(float(ys.min()) - pad, float(cf["R"]) + pad)
    return fig


def weights_report(data: str | os.PathLike | Sequence[str | os.PathLike],
                out_dir: str | os.PathLike, *, qps: Sequence[int] | None = None,
                a_bounds=(-10.0, 10.0), b_bounds=(-10.0, 10.0), init_points: int = 8,
                n_iter: int = 40, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Load shards, search the weights, write OUT/weights.json and OUT/weights.png."""
    table = load_ctu_table(data, qps, progress=progress,
                           require_depth="the QP/depth weighting needs depth")
    result = analyze_weights(table, a_bounds=a_bounds, b_bounds=b_bounds,
                             init_points=init_points, n_iter=n_iter, seed=seed)
    result["qp_filter"] = None if qps is None else sorted(set(qps))
    out = Path(out_dir)
    png = plot_weights(result, out / "weights.png")
    js = write_json(out / "weights.json", result)
    result["table"] = weights_table(result)
    result["files"] = [str(js), str(png)]
    return result


__all__ = ["analyze_weights", "bo_search", "closed_form", "corr_at_angle", "weights_report",
           "weighted_corr", "weights_figure"]
