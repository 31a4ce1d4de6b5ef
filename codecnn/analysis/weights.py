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

from codecnn.analysis.correlation import UndefinedCorrelation, _r_and_p, pearson
from codecnn.analysis.ctu_data import CtuTable, load_ctu_table
from codecnn.analysis.report import markdown_table, pyplot, save_figure, write_json
from codecnn.errors import DataError

UNDEFINED_SCORE = -1.0  # objective value where w is constant (a = b = 0): the worst corr


def weighted_corr(a: float, b: float, qp: np.ndarray, depth: np.ndarray,
                  mse: np.ndarray) -> float:
    """corr(a·QP + b·depth, MSE); UNDEFINED_SCORE when the weighted sum is constant."""
    w = a * qp + b * depth
    if np.all(w == w[0]):
        return UNDEFINED_SCORE
    return _r_and_p(w, mse)[0]


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
    r_mult = _r_and_p(fitted, mse)[0]
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
    """corr(a·QP + b·depth, MSE) over the bounds (from the moments), BO samples, optimum ray."""
    plt = pyplot()
    m = result["moments"]
    (alo, ahi), (blo, bhi) = result["bounds"]["a"], result["bounds"]["b"]
    a = np.linspace(alo, ahi, 201)
    b = np.linspace(blo, bhi, 201)
    A, B = np.meshgrid(a, b)
    var_w = A**2 * m["var_qp"] + 2 * A * B * m["cov_qp_depth"] + B**2 * m["var_depth"]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (A * m["cov_qp_mse"] + B * m["cov_depth_mse"]) / np.sqrt(var_w * m["var_mse"])
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    im = ax0.contourf(A, B, np.ma.masked_invalid(corr), levels=30, cmap="viridis")
    fig.colorbar(im, ax=ax0, label="corr(w, MSE)")
    pts = np.array(result["bo_free"]["points"])
    ax0.scatter(pts[:, 0], pts[:, 1], s=10, c="white", edgecolors="black", lw=0.5,
                label="BO samples")
    cf = result["closed_form"]
    direction = np.array([cf["coef_qp"], cf["coef_depth"]])
    t = np.linspace(0, 2 * max(abs(alo), abs(ahi), abs(blo), abs(bhi)), 2)
    ray = direction[:, None] / np.linalg.norm(direction) * t
    ax0.plot(ray[0], ray[1], "r--", lw=1.2, label=f"OLS direction (R = {cf['R']:.4f})")
    ax0.plot(result["bo_free"]["a"], result["bo_free"]["b"], "r*", ms=12, label="BO best")
    ax0.set_xlim(alo, ahi)
    ax0.set_ylim(blo, bhi)
    ax0.set_xlabel("a (QP weight)")
    ax0.set_ylabel("b (depth weight)")
    ax0.legend(fontsize=7, loc="lower left")
    ax0.set_title("a and b free")
    var_1 = a**2 * m["var_qp"] + 2 * a * m["cov_qp_depth"] + m["var_depth"]
    with np.errstate(invalid="ignore", divide="ignore"):
        c1 = (a * m["cov_qp_mse"] + m["cov_depth_mse"]) / np.sqrt(var_1 * m["var_mse"])
    ax1.plot(a, c1, "k-", lw=1, label="corr(a·QP + depth, MSE)")
    p1 = np.array(result["bo_b1"]["points"])
    ax1.scatter(p1[:, 0], p1[:, 2], s=12, c="tab:orange", label="BO samples", zorder=3)
    ax1.axhline(cf["R"], color="r", ls="--", lw=1, label="closed-form R")
    ax1.set_xlabel("a (QP weight), b = 1")
    ax1.set_ylabel("corr(w, MSE)")
    ax1.legend(fontsize=7)
    ax1.set_title("b fixed to 1")
    return save_figure(fig, path)


def run_weights(data: str | os.PathLike | Sequence[str | os.PathLike],
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


def run_weights_stage(shard_dir: str | os.PathLike, out_dir: str | os.PathLike
                      ) -> dict[str, Any]:
    """Demo stage (shards with depth, e.g. HEVC via libde265): weights search; prints table."""
    result = run_weights(shard_dir, out_dir, init_points=8, n_iter=40, progress=False)
    print(result["table"])
    return result


__all__ = ["analyze_weights", "bo_search", "closed_form", "run_weights", "run_weights_stage",
           "weighted_corr"]
