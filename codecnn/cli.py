"""The `codecnn` command line: thin commands that parse, call one library function, print.

Every `CodecnnError` becomes a one-line message on stderr and exit status 1 (no traceback).
Heavy modules (torch, h5py) are imported inside the commands so `codecnn --help` is fast.
"""

from __future__ import annotations

import sys

import click

from codecnn import __version__
from codecnn.errors import CodecnnError


class _Group(click.Group):
    """A click group that reports library errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CodecnnError as e:
            click.echo(f"codecnn: error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codecnn")
def main() -> None:
    """CNN in-loop filters for VVC: encode, extract, train, eval, analyze."""


# --- analysis ---
def _qp_list(ctx, param, text: str | None) -> list[int] | None:
    """Option callback: '22,27' → [22, 27]; None stays None."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"QPs must look like 22,27,32, got {text!r}") from None


@main.group()
def analyze() -> None:
    """Research analyses: SATD ranking, QP/depth correlation, QP/depth weighting."""


@analyze.command("satd")
@click.option("--data", "data", type=click.Path(), multiple=True, help="Shard file or directory.")
@click.option("--rec", type=click.Path(), help="Reconstructed raw YUV (with --orig).")
@click.option("--orig", type=click.Path(), help="Original raw YUV (with --rec).")
@click.option("--size", help="WxH of the YUV pair when the names do not say it.")
@click.option("--bit-depth", type=click.Choice(["8", "10"]), help="Bit depth of the YUV pair.")
@click.option("--frames", type=click.IntRange(min=1), help="Use only the first N frames.")
@click.option("--block", type=click.Choice(["4", "8", "16", "32"]), default="8",
              show_default=True, help="Square block size the metrics are taken over.")
@click.option("--qp", "qps", callback=_qp_list,
              help="Only shard CTUs of these nominal QPs, e.g. 22,37.")
@click.option("-o", "--out", "out_dir", type=click.Path(), required=True, help="Output dir.")
def analyze_satd(data, rec, orig, size, bit_depth, frames, block, qps, out_dir) -> None:
    """Rank candidate predictions by Hadamard-SATD, DCT-SATD and SSE; JSON + PNG."""
    from codecnn.analysis.ranking import run_satd_analysis
    from codecnn.io.yuv import parse_size

    result = run_satd_analysis(
        out_dir, data=list(data) or None, rec=rec, orig=orig,
        size=parse_size(size) if size else None, bit_depth=int(bit_depth) if bit_depth else None,
        block=int(block), qps=qps, frames=frames)
    click.echo(result["table"])
    click.echo("wrote " + ", ".join(result["files"]))


@analyze.command("correlation")
@click.option("--data", "data", type=click.Path(), multiple=True, required=True,
              help="Shard file or directory (repeatable).")
@click.option("--qp", "qps", callback=_qp_list,
              help="Only CTUs of these nominal QPs, e.g. 22,37.")
@click.option("-o", "--out", "out_dir", type=click.Path(), required=True, help="Output dir.")
def analyze_correlation(data, qps, out_dir) -> None:
    """Pearson/Spearman of CTU residual MSE with slice QP and mean CU depth; JSON + PNG."""
    from codecnn.analysis.correlation import run_correlation

    result = run_correlation(list(data), out_dir, qps=qps)
    click.echo(result["table"])
    click.echo("wrote " + ", ".join(result["files"]))


@analyze.command("weights")
@click.option("--data", "data", type=click.Path(), multiple=True, required=True,
              help="Shard file or directory with depth (repeatable).")
@click.option("--qp", "qps", callback=_qp_list,
              help="Only CTUs of these nominal QPs, e.g. 22,37.")
@click.option("--a-bounds", nargs=2, type=float, default=(-10.0, 10.0), show_default=True,
              help="Search bounds of the QP weight a.")
@click.option("--b-bounds", nargs=2, type=float, default=(-10.0, 10.0), show_default=True,
              help="Search bounds of the depth weight b.")
@click.option("--init-points", type=click.IntRange(min=1), default=8, show_default=True,
              help="Random points before the Bayesian search.")
@click.option("--iterations", type=click.IntRange(min=0), default=40, show_default=True,
              help="Bayesian optimisation iterations.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--out", "out_dir", type=click.Path(), required=True, help="Output dir.")
def analyze_weights(data, qps, a_bounds, b_bounds, init_points, iterations, seed,
                    out_dir) -> None:
    """Bayesian search of a, b in w = a*QP + b*depth maximising corr(w, MSE); JSON + PNG."""
    from codecnn.analysis.weights import run_weights

    result = run_weights(list(data), out_dir, qps=qps, a_bounds=tuple(a_bounds),
                         b_bounds=tuple(b_bounds), init_points=init_points, n_iter=iterations,
                         seed=seed)
    click.echo(result["table"])
    click.echo("wrote " + ", ".join(result["files"]))
# --- end analysis ---


if __name__ == "__main__":
    main()
