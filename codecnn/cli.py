"""The `codecnn` command line: thin commands that parse, call one library function, print.

Every `CodecnnError` becomes a one-line message on stderr and exit status 1 (no traceback).
Heavy modules (torch, h5py) are imported inside the commands so `codecnn --help` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


# --- evaluate ---


@main.command("filter")
@click.option("--model", "checkpoint", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint (RUN/best.pt).")
@click.option("--yuv", required=True, type=click.Path(dir_okay=False),
              help="Decoded sequence (raw YUV; size/bit depth from flags or its name).")
@click.option("--size", default=None, help="Picture size WxH (else parsed from the name).")
@click.option("--bit-depth", type=click.Choice(["8", "10"]), default=None,
              help="Bit depth (else from the name, else 8).")
@click.option("--qp", type=click.IntRange(0, 63), default=None,
              help="Slice QP fed to the model's QP plane (models that take one).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present).")
@click.option("--bf16", is_flag=True, help="Run the model under bfloat16 autocast.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True,
              help="CTUs per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Filtered sequence (same format; chroma copied unchanged).")
def filter_cmd(checkpoint, yuv, size, bit_depth, qp, device, bf16, batch, overwrite, output):
    """Filter every luma picture of a decoded YUV file, CTU by CTU."""
    from codecnn.evaluate import filter_yuv
    from codecnn.io.yuv import parse_size

    done = filter_yuv(checkpoint, yuv, output, size=parse_size(size) if size else None,
                      bit_depth=int(bit_depth) if bit_depth else None, qp=qp, device=device,
                      dtype="bf16" if bf16 else "fp32", batch=batch, overwrite=overwrite)
    click.echo(f"wrote {done['frames']} frames to {done['out']} "
               f"({done['seconds']:.1f} s on {done['device']})")


@main.command("eval")
@click.option("--model", "checkpoint", required=True, type=click.Path(dir_okay=False),
              help="Checkpoint (RUN/best.pt).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(),
              help="Coded-sequence manifest, or a directory of them (repeatable).")
@click.option("--data", "shards", multiple=True, type=click.Path(),
              help="HDF5 shard or directory of shards (per-QP gain without decoding).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Report directory (report.json, report.md, PNG plots).")
@click.option("--switch", type=click.Choice(["ctu", "frame"]), default=None,
              help="Also evaluate on/off switching per CTU or picture (1 flag bit each).")
@click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if present).")
@click.option("--bf16", is_flag=True, help="Run the model under bfloat16 autocast.")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True,
              help="CTUs per forward pass.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report directory.")
def eval_cmd(checkpoint, manifests, shards, output, switch, device, bf16, batch, overwrite):
    """PSNR-Y gain per QP, BD-rate and plots of a trained filter."""
    from codecnn.errors import DataError
    from codecnn.evaluate import evaluate_data, evaluate_manifests
    from codecnn.evaluate.report import per_qp_table

    if bool(manifests) == bool(shards):
        raise DataError("give either --manifest (coded sequences) or --data (shards)")
    dtype = "bf16" if bf16 else "fp32"
    if manifests:
        rep = evaluate_manifests(checkpoint, list(manifests), output, switch=switch,
                                 device=device, dtype=dtype, batch=batch, overwrite=overwrite,
                                 command=["codecnn", *sys.argv[1:]])
    else:
        rep = evaluate_data(checkpoint, list(shards), output, device=device, dtype=dtype,
                            batch=batch, overwrite=overwrite, command=["codecnn", *sys.argv[1:]])
    click.echo(per_qp_table(rep["summary"], rep.get("switch")))
    o = rep["summary"]["overall"]
    if "bd_rate_pchip" in o:
        line = f"BD-rate (PCHIP): {_pct(o['bd_rate_pchip'])}"
        if switch:
            line += f"; with {switch} switching: {_pct(o.get('switch_bd_rate_pchip'))}"
        click.echo(line)
    click.echo(f"report: {Path(rep['out_dir']) / 'report.md'}")


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:+.2f} %"

# --- end evaluate ---


if __name__ == "__main__":
    main()


# --- train ---
# `codecnn summary` and `codecnn train`: thin wrappers over codecnn.models / codecnn.train.


def _planes_option(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(p.strip() for p in value.split(",") if p.strip())


@main.command("summary")
@click.argument("model")
@click.option("--planes", default="rec,qp", show_default=True,
              help="Input planes, comma separated (rec, qp, depth); ignored for a checkpoint.")
@click.option("--size", default=132, show_default=True, help="Input patch side (CTU + border).")
@click.option("--train-batch", default=16, show_default=True)
@click.option("--infer-batch", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def summary_cmd(model: str, planes: str, size: int, train_batch: int, infer_batch: int,
                as_json: bool) -> None:
    """Params, kMAC/pixel and activation memory of MODEL (a preset, e.g. rdn-s, or a .pt)."""
    import json
    from pathlib import Path

    from codecnn.models import build_model, load_model
    from codecnn.models.complexity import format_summary, summarize

    if Path(model).suffix == ".pt" or Path(model).is_file():
        net, _ = load_model(model)
    else:
        net = build_model(model, planes=_planes_option(planes))
    s = summarize(net, size, size, train_batch=train_batch, infer_batch=infer_batch)
    if as_json:
        click.echo(json.dumps({"model": model, "config": dict(vars(net.config)), **s}, indent=2))
    else:
        click.echo(format_summary(model, s))


@main.command("train")
@click.argument("model", type=click.Choice(["rdn"]))
@click.option("--data", multiple=True, help="Shard file or directory (repeatable).")
@click.option("--val", multiple=True, help="Validation shards (default: split by sequence).")
@click.option("--preset", default=None, help="rdn-s (default), rdn-m, rdn-ds.")
@click.option("--planes", default=None, help="Input planes, e.g. rec,qp (default: all).")
@click.option("--features", type=int, default=None, help="Override the preset's feature maps.")
@click.option("--blocks", type=int, default=None, help="Override the preset's RDB count.")
@click.option("--layers", type=int, default=None, help="Override the layers per RDB.")
@click.option("--growth", type=int, default=None, help="Override the growth rate.")
@click.option("--steps", type=int, default=None, help="Total optimizer steps of the run.")
@click.option("--until", type=int, default=None, help="Stop this invocation at this step.")
@click.option("--batch-size", type=int, default=None, help="Patches per step and process.")
@click.option("--seed", type=int, default=None)
@click.option("--lr", type=float, default=None, help="Peak learning rate (AdamW).")
@click.option("--loss", type=click.Choice(["mse", "l1"]), default=None)
@click.option("--val-every", type=int, default=None, help="Validate + checkpoint every K steps.")
@click.option("--amp", type=click.Choice(["auto", "bf16", "off"]), default=None)
@click.option("--channels-last/--no-channels-last", default=None)
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile.")
@click.option("--workers", type=int, default=None, help="DataLoader workers.")
@click.option("--device", default=None, help="auto (default), cpu, cuda.")
@click.option("-o", "--output", default=None, help="Run directory RUN.")
@click.option("--resume", default=None, help="Continue the run in this directory.")
@click.option("--overwrite", is_flag=True, help="Start again in an existing RUN.")
def train_cmd(model: str, data, val, preset, planes, features, blocks, layers, growth, steps,
              until, batch_size, seed, lr, loss, val_every, amp, channels_last, compile_,
              workers, device, output, resume, overwrite) -> None:
    """Train MODEL (rdn) on shards: codecnn train rdn --data DIR --steps N -o RUN."""
    import dataclasses

    from codecnn.models import PRESETS
    from codecnn.train import TrainConfig, load_run_config, train_rdn

    if preset is not None and preset in PRESETS and PRESETS[preset][0] != model:
        raise CodecnnError(f"preset {preset!r} is not a {model} model")
    given = {"data": tuple(data) or None, "val": tuple(val) or None, "preset": preset,
             "planes": _planes_option(planes), "steps": steps, "batch_size": batch_size,
             "seed": seed, "lr": lr, "loss": loss, "val_every": val_every, "amp": amp,
             "channels_last": channels_last, "compile": compile_, "workers": workers,
             "device": device}
    overrides = {"features": features, "blocks": blocks, "layers": layers, "growth": growth}
    if any(v is not None for v in overrides.values()):
        given["model_overrides"] = {k: v for k, v in overrides.items() if v is not None}
    given = {k: v for k, v in given.items() if v is not None}
    if resume:
        if output and output != resume:
            raise CodecnnError(f"-o {output} and --resume {resume} name different runs")
        run = resume
        try:
            config = dataclasses.replace(load_run_config(resume), **given)
        except ValueError as e:
            raise CodecnnError(str(e)) from None
    else:
        if not output:
            raise CodecnnError("give the run directory with -o RUN (or --resume RUN)")
        if "data" not in given:
            raise CodecnnError("give the training shards with --data DIR|FILE")
        run = output
        try:
            config = TrainConfig(**given)
        except ValueError as e:
            raise CodecnnError(str(e)) from None
    s = train_rdn(config, run, resume=bool(resume), overwrite=overwrite, until=until,
                  command=["codecnn", *sys.argv[1:]])
    click.echo(f"{s['run']}: step {s['step']}/{s['steps']} in {s['seconds']:.1f} s "
               f"({s['patches_per_s']:.1f} patches/s)")
    for row in s["val"]:
        qp = "mean" if row["nominal_qp"] == "all" else f"QP {row['nominal_qp']}"
        click.echo(f"  {qp:>5}: PSNR-Y gain {row['gain_db']:+.4f} dB "
                   f"(rec {row['psnr_rec']:.3f} dB, {row['frames']} frames)")
