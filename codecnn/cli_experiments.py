"""`codecnn sweep` and `codecnn inspect`: thin click commands over codecnn.experiments."""

from __future__ import annotations

import sys

import click


@click.command("sweep")
@click.option("--data", multiple=True, required=True, help="Training shards (repeatable).")
@click.option("--val", multiple=True, help="Validation shards (default: split by sequence).")
@click.option("--space", "space_file", default=None, type=click.Path(dir_okay=False),
              help="Search space JSON (see codecnn/experiments/space.py); flags override it.")
@click.option("--lr", default=None, metavar="LO,HI", help="Learning rate bounds (log scale).")
@click.option("--features", default=None, metavar="LO,HI", help="Width bounds.")
@click.option("--blocks", default=None, metavar="LO,HI", help="RDB count bounds.")
@click.option("--crop", default=None, metavar="LO,HI", help="Training crop bounds ('none': "
              "whole CTUs).")
@click.option("--loss", default=None, metavar="A,B", help="Losses to choose from (mse,l1).")
@click.option("--kmac", default=None, metavar="LO,HI",
              help="kMAC/px range every trial's network must fall in (the width is moved "
              "into it).")
@click.option("--preset", default=None, help="Architecture the searched values override "
              "(default rdn-cpu).")
@click.option("--trials", type=int, default=10, show_default=True, help="Trials in all.")
@click.option("--steps-per-trial", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init-points", type=int, default=None,
              help="Random trials before the optimiser (default: trials/3, 2 to 5).")
@click.option("--trial", "only_trial", type=int, default=None,
              help="Run only trial N (for farming trials out, or one torchrun job each).")
@click.option("-o", "--output", "--out", "output", required=True, help="Sweep directory.")
@click.option("--overwrite", is_flag=True, help="Start again in an existing sweep directory.")
def sweep_cmd(data, val, space_file, lr, features, blocks, crop, loss, kmac, preset, trials,
              steps_per_trial, seed, init_points, only_trial, output, overwrite) -> None:
    """Bayesian optimisation of training hyper-parameters; each trial a resumable run.

    Rerun the same command to resume after a kill; README "Sweeps" says how a cluster
    farms trials out.

    \b
    codecnn sweep --data shards --trials 12 --steps-per-trial 2000 --kmac 10,40 -o sweep
    """
    from codecnn.experiments.space import make_space, read_space_file
    from codecnn.experiments.sweep import default_init_points, resolve_settings, run_sweep

    file_values = read_space_file(space_file) if space_file else {}
    flags = {"lr": lr, "features": features, "blocks": blocks, "loss": loss,
             "kmac": kmac, "preset": preset,
             "crop": None if crop is None else (None if crop.lower() == "none" else crop)}
    if crop is not None and crop.lower() == "none":
        file_values = {**file_values, "crop": None}
    space = make_space(file_values, flags, where=space_file or "search space")
    settings = resolve_settings(space, list(data), list(val) or None, steps_per_trial, seed,
                                init_points or default_init_points(trials))
    report = run_sweep(settings, output, trials, only_trial=only_trial, overwrite=overwrite,
                       command=["codecnn", *sys.argv[1:]])
    best = report.get("best")
    if best:
        click.echo(f"{output}: {report['finished']} trial(s) finished; best trial "
                   f"{best['trial']} {best['score']:+.4f} dB (results.md, scores.png, tb/)")


def _size(text: str | None) -> tuple[int, int] | None:
    from codecnn.io.yuv import parse_size

    return parse_size(text) if text else None


@click.command("inspect")
@click.option("--model", "model_ref", required=True, help="Checkpoint path or zoo:NAME.")
@click.option("--data", multiple=True, help="Shard file or directory (repeatable).")
@click.option("--yuv", default=None, type=click.Path(dir_okay=False),
              help="Decoded YUV (with --orig) instead of shards.")
@click.option("--orig", default=None, type=click.Path(dir_okay=False), help="Original of --yuv.")
@click.option("--size", default=None, help="WxH of the YUV files (default: from the names).")
@click.option("--bit-depth", type=click.Choice(["8", "10"]), default=None)
@click.option("--qp", type=click.IntRange(0, 63), default=None,
              help="Slice QP of --yuv (for models with a QP plane).")
@click.option("--layers", default=None,
              help="Layers to draw, comma separated (default: head, blocks.0.convs.0, every "
              "block, gff).")
@click.option("--ctus", type=int, default=4, show_default=True, help="CTUs drawn.")
@click.option("--sample", type=int, default=64, show_default=True,
              help="CTUs the statistics are taken over.")
@click.option("--maps", type=int, default=8, show_default=True, help="Channels per layer.")
@click.option("-o", "--output", "--out", "output", required=True, help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Write into an existing directory.")
def inspect_cmd(model_ref, data, yuv, orig, size, bit_depth, qp, layers, ctus, sample, maps,
                output, overwrite) -> None:
    """Activation maps, per-layer statistics (mean, std, dead ReLUs) and predicted vs true
    residual of a model, through forward hooks.

    \b
    codecnn inspect --model runs/a/best.pt --data shards -o look
    codecnn inspect --model zoo:rdn-vvc-ai --yuv rec_352x288_10bit.yuv --orig o.yuv --qp 37 -o l
    """
    from codecnn.experiments.inspect import inspect_model

    rep = inspect_model(
        model_ref, output, data=list(data) or None, yuv=yuv, orig=orig, size=_size(size),
        bit_depth=int(bit_depth) if bit_depth else None, qp=qp,
        layers=[x.strip() for x in layers.split(",") if x.strip()] if layers else None,
        ctus=ctus, sample=sample, maps=maps, overwrite=overwrite)
    click.echo(f"{output}: {rep['sample']['ctus']} CTUs, {len(rep['statistics'])} layers "
               f"(layers.md, inspect.json, residual.png, "
               f"{len(rep['figures']['activations'])} activation grid(s))")
