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
