"""The `codecnn export` command (registered in codecnn/cli.py): parse, call, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("export")
@click.option("--model", "checkpoint", required=True,
              help="Checkpoint (RUN/best.pt) or zoo:NAME.")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("-o", "--output", "--out", "output", required=True,
              type=click.Path(dir_okay=False), help="The ONNX model to write (model.onnx).")
@click.option("--calib", multiple=True, type=click.Path(),
              help="Shards of real CTUs (repeatable) for the ONNX check and the int8/int16 "
                   "calibration: training data, not the set measured on. Default: --measure "
                   "when that is shards.")
@click.option("--calib-patches", type=click.IntRange(1), default=64, show_default=True,
              help="CTUs taken evenly from --calib.")
@click.option("--int8", is_flag=True,
              help="Also write MODEL.int8.onnx (onnxruntime static quantisation, QDQ).")
@click.option("--int16", is_flag=True,
              help="Also write MODEL.int16.npz (SADL-style int16 fixed point, exact integers).")
@click.option("--acc-bits", type=click.Choice(["64", "32"]), default="64", show_default=True,
              help="Accumulator width of the int16 model (32: saturating, as SIMD kernels).")
@click.option("--measure", multiple=True, type=click.Path(),
              help="Shards or manifests (repeatable): score the float model and every "
                   "exported version on them (per-QP gain; BD-rate on manifests).")
@click.option("--report", type=click.Path(file_okay=False), default=None,
              help="Report directory of --measure (default: MODEL.export next to -o).")
@click.option("--device", default=None,
              help="Device of the float and int16 runs in --measure (onnxruntime: CPU).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def export_cmd(checkpoint, fmt, output, calib, calib_patches, int8, int16, acc_bits, measure,
               report, device, overwrite):
    """Export a filter for deployment; check it; quantise it; measure what each keeps."""
    from codecnn.export.deploy import export_model
    from codecnn.export.measure import data_kind, measure_variants, table

    calib = list(calib)
    if not calib and measure and data_kind(list(measure)) == "shards":
        calib = list(measure)
        click.echo("note: calibrating on the --measure shards (give --calib training shards "
                   "to keep calibration and measurement apart)", err=True)
    done = export_model(checkpoint, output, calib, int8=int8, int16=int16,
                        calib_patches=calib_patches, acc_bits=int(acc_bits),
                        overwrite=overwrite)
    c = done["check"]
    click.echo(f"wrote {output}: onnxruntime vs PyTorch on {c['patches']} real CTUs, max |diff| "
               f"{c['max_abs_diff']:.2e} of the peak "
               f"({c['max_abs_diff'] * ((1 << done['bit_depth']) - 1):.2e} samples)")
    if int8:
        click.echo(f"wrote {done['files']['int8']}: max |diff| vs float "
                   f"{done['int8']['max_abs_diff_vs_float']:.2e} of the peak")
    if int16:
        i = done["int16"]
        click.echo(f"wrote {done['files']['int16']}: max |diff| vs float "
                   f"{i['max_abs_diff_samples']:.3f} samples; rounded residual differs at "
                   f"{100 * i['rounded_residual_differs']:.2f} % of samples; accumulators "
                   f"need {i['accumulator_bits']} bits")
    if not measure:
        return
    files = {"float": checkpoint, **done["files"]}
    out_dir = report or str(Path(output).with_suffix(".export"))
    summary = measure_variants(files, list(measure), out_dir, export=done, device=device,
                               overwrite=overwrite, command=["codecnn", *sys.argv[1:]])
    click.echo(table(summary))
    click.echo(f"report: {Path(out_dir) / 'export.md'}")
