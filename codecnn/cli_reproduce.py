"""`codecnn reproduce`: the research notes' RDN table and the families at one budget."""

from __future__ import annotations

import sys
from pathlib import Path

import click

_SOURCES = click.option("--only", default=None,
                        help="Only these corpus sources, comma separated (small trials)")


def _common(f):
    for opt in reversed([
        click.option("--corpus", default="corpus", show_default=True,
                     help="Corpus root (built or completed here: codecnn corpus)"),
        click.option("-o", "--out", "--output", "out_dir", default=None,
                     help="Runs, reports and the comparison (default repro/<what>)"),
        click.option("--full", is_flag=True, help="The GPU size: more steps, whole CTUs, "
                     "every held-out source"),
        click.option("--steps", type=click.IntRange(1), default=None,
                     help="Override the training steps"),
        click.option("--batch-size", type=click.IntRange(1), default=None,
                     help="Override the batch size"),
        click.option("--crop", type=click.IntRange(4), default=None,
                     help="Override the training crop"),
        click.option("--codec", type=click.Choice(["vvc", "hevc"]), default=None,
                     help="Corpus to train and evaluate on (default: hevc at the CPU size, "
                     "where networks learn from scratch in CPU hours; vvc with --full)"),
        _SOURCES,
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda"),
        click.option("-j", "--jobs", type=int, default=2, show_default=True,
                     help="Parallel encodes while building the corpus"),
        click.option("--no-wallpapers", is_flag=True, help="Build the corpus without them"),
    ]):
        f = opt(f)
    return f


def _only(text: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else None


@click.group("reproduce")
def reproduce_group() -> None:
    """Reproduce the research notes' RDN table, or compare the families at one budget."""


@reproduce_group.command("seed-rdn")
@_common
def seed_rdn_cmd(corpus, out_dir, full, steps, batch_size, crop, codec, only, device, jobs,
                 no_wallpapers) -> None:
    """Train rdn-s, rdn-m, rdn-ds alike; held-out gains beside the notes' +0.15/+0.20/+0.08
    dB, and whether the order matches. Resumable: rerun the same command."""
    from codecnn.reproduce import reproduce_seed_rdn

    c = reproduce_seed_rdn(corpus, out_dir or "repro/seed-rdn", full=full, steps=steps,
                           batch_size=batch_size, crop=crop, codec=codec,
                           only=_only(only),
                           device=device, jobs=jobs, wallpapers=not no_wallpapers,
                           command=["codecnn", *sys.argv[1:]], echo=click.echo)
    click.echo(f"comparison: {Path(c['out_dir']) / 'compare.md'} ({c['seconds']:.0f} s)")


@reproduce_group.command("budget")
@click.option("--budget-kmac", type=float, default=30.0, show_default=True, metavar="K",
              help="Every family sized to K kMAC/px (±5 %)")
@click.option("--families", default=None,
              help="Comma separated (default: rdn,resnet,imdn,rcan,mobile,lop)")
@_common
def budget_cmd(budget_kmac, families, corpus, out_dir, full, steps, batch_size, crop, codec,
               only, device, jobs, no_wallpapers) -> None:
    """Every family at one budget on the same data, ending in compare's table and plot.
    Resumable: rerun the same command."""
    from codecnn.evaluate.compare import best_line, overall_table
    from codecnn.reproduce import FAMILIES, reproduce_budget

    c = reproduce_budget(corpus, out_dir or f"repro/budget-{budget_kmac:g}",
                         budget_kmac=budget_kmac, families=_only(families) or FAMILIES,
                         full=full, steps=steps, batch_size=batch_size, crop=crop,
                         codec=codec, only=_only(only), device=device, jobs=jobs,
                         wallpapers=not no_wallpapers, command=["codecnn", *sys.argv[1:]],
                         echo=click.echo)
    click.echo(overall_table(c))
    click.echo(best_line(c))
    click.echo(f"comparison: {Path(c['out_dir']) / 'compare.md'} ({c['seconds']:.0f} s)")


@reproduce_group.command("seed-correlation")
@click.option("--corpus", default="corpus", show_default=True,
              help="Corpus root (built or completed here: codecnn corpus)")
@click.option("-o", "--out", "--output", "out_dir", default="repro/seed-correlation",
              show_default=True, help="Where seed_correlation.{md,json,png} go")
@click.option("--vtm-decoder", default=None, metavar="PATH",
              help="VTM DecoderApp built with tracing (tools/build_vtm.sh): depth from VVC "
              "itself (default $CODECNN_VTM_DECODER; without one, depth from HEVC)")
@_SOURCES
@click.option("-j", "--jobs", type=int, default=2, show_default=True,
              help="Parallel encodes while building the corpus")
@click.option("--no-wallpapers", is_flag=True, help="Build the corpus without them")
def seed_correlation_cmd(corpus, out_dir, vtm_decoder, only, jobs, no_wallpapers) -> None:
    """The notes' QP/depth correlation table (Pearson QP-MSE, depth-MSE over all QPs and per
    QP, Bayesian a and b, b = 1, r) on the corpus, beside the notes' numbers. Depth from VVC
    through VTM when a VTM decoder is configured, from HEVC otherwise (the output says which).
    """
    from codecnn.reproduce import reproduce_seed_correlation

    r = reproduce_seed_correlation(corpus, out_dir, vtm_decoder=vtm_decoder, only=_only(only),
                                   jobs=jobs, wallpapers=not no_wallpapers, echo=click.echo)
    click.echo(f"table: {r['files'][0]}")
