"""`codecnn compare`: evaluated runs side by side (codecnn.evaluate.compare)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, metavar="RUN_OR_REPORT...")
@click.option("-o", "--output", "--out", "output", required=True,
              type=click.Path(file_okay=False),
              help="Directory for compare.md, compare.json and compare.png.")
@click.option("--allow-different-data", is_flag=True,
              help="Compare runs evaluated on different data (marked in every output).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
def compare_cmd(runs, output, allow_different_data, overwrite) -> None:
    """One table per QP and overall (kMAC/px, params, gains, BD-rate always on and with CTU
    switching, steps, wall time, data) and BD-rate against kMAC/px with its Pareto front.

    Each RUN_OR_REPORT is a `codecnn eval` report (directory or report.json) or a training
    run holding one. Example: codecnn compare runs/imdn runs/lop/heldout -o cmp
    """
    from codecnn.evaluate.compare import best_line, compare, overall_table

    c = compare(list(runs), output, overwrite=overwrite,
                allow_different_data=allow_different_data)
    click.echo(overall_table(c))
    click.echo(best_line(c))
    if not c["same_data"]:
        click.echo("warning: the runs were evaluated on different data")
    click.echo(f"comparison: {Path(c['out_dir']) / 'compare.md'} (+ compare.json, compare.png)")
