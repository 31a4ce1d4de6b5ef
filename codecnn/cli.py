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


# --- extract ---
@main.command("extract")
@click.option("--yuv", "rec", type=click.Path(dir_okay=False), help="Reconstruction (raw YUV).")
@click.option("--orig", type=click.Path(dir_okay=False), help="Original of --yuv (raw YUV).")
@click.option("--size", help="WxH of both YUV files (default: from the file names).")
@click.option("--bit-depth", type=click.Choice(["8", "10"]), help="Bit depth of both YUV files.")
@click.option("--qp", type=click.IntRange(0, 63), help="The QP every picture was coded at.")
@click.option("--qp-map", type=click.Path(dir_okay=False), help="Per-sample QP map file.")
@click.option("--qp-map-format", help="raw | raw4 | vtm-trace | dump | dump8 | dump10 "
              "(default: from the suffix: .yuv dump, .txt/.csv/.trace vtm-trace, else raw).")
@click.option("--depth-map", type=click.Path(dir_okay=False), help="Per-sample CU depth map.")
@click.option("--depth-map-format", help="As --qp-map-format.")
@click.option("--sequence", help="Sequence name stored in the shard (default: --orig's stem).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(dir_okay=False),
              help="Coded-sequence manifest(s) from `codecnn encode`; more may follow as args.")
@click.argument("more_manifests", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="OUT.h5 with --yuv; a directory of <sequence>_qp<QP>.h5 with --manifest.")
@click.option("-j", "--jobs", default=1, type=click.IntRange(1, 64), help="Parallel shards.")
@click.option("--ctu-size", default=128, type=int, show_default=True)
@click.option("--border", default=2, type=int, show_default=True)
@click.option("--full-ctus-only", is_flag=True, help="Skip CTUs cut by the picture edge.")
@click.option("--compression", default=None, help="none | lzf | gzip-1 | blosc-zstd | "
              "blosc-lz4 (default blosc-lz4, chosen by tools/bench_extract.py).")
@click.option("--overwrite", is_flag=True, help="Replace existing shards.")
def extract_cmd(rec, orig, size, bit_depth, qp, qp_map, qp_map_format, depth_map,
                depth_map_format, sequence, manifests, more_manifests, output, jobs, ctu_size,
                border, full_ctus_only, compression, overwrite) -> None:
    """Cut decoded pictures into CTU patches (+ border) with QP/depth planes → HDF5 shards.

    \b
    codecnn extract --yuv rec.yuv --orig orig.yuv --size 1280x720 --bit-depth 10 --qp 32 -o a.h5
    codecnn extract --manifest out/*/qp*/manifest.json -o shards/ -j 2
    """
    from codecnn.errors import DataError
    from codecnn.extract import DEFAULT_COMPRESSION, ExtractOptions, extract_manifests, extract_yuv
    from codecnn.io.yuv import parse_size

    options = ExtractOptions(ctu_size=ctu_size, border=border, full_ctus_only=full_ctus_only,
                             compression=compression or DEFAULT_COMPRESSION, overwrite=overwrite)
    all_manifests = [*manifests, *more_manifests]
    if all_manifests:
        if rec or orig:
            raise DataError("give either --manifest or --yuv/--orig, not both")
        results = extract_manifests(all_manifests, output, options, jobs=jobs)
        for r in results:
            state = "skipped (complete)" if r.get("skipped") else f"{r['seconds']:.1f} s"
            click.echo(f"{r['path']}: {r['patches']} patches, QP {r['nominal_qp']}, {state}")
        return
    if not rec or not orig:
        raise DataError("give --yuv REC and --orig ORIG, or --manifest M.json")
    r = extract_yuv(rec, orig, output, size=parse_size(size) if size else None,
                    bit_depth=int(bit_depth) if bit_depth else None, qp=qp, qp_map=qp_map,
                    qp_map_format=qp_map_format, depth_map=depth_map,
                    depth_map_format=depth_map_format, sequence=sequence, options=options)
    click.echo(f"{r['path']}: {r['patches']} patches from {r['frames']} pictures, "
               f"QP {r['nominal_qp']}, depth={r['has_depth']}, {r['bytes']} bytes, "
               f"{r['seconds']:.1f} s")


@main.group("dataset")
def dataset_group() -> None:
    """Inspect HDF5 shard datasets."""


@dataset_group.command("info")
@click.argument("path", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def dataset_info_cmd(path, as_json) -> None:
    """Patches per QP and per sequence, has_depth, bytes and compression of shards."""
    import json

    from codecnn.datasets.info import dataset_info, format_info

    info = dataset_info(list(path))
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))
# --- end extract ---


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
@click.option("--workers", type=int, default=None, help="DataLoader workers (default 2, GPU 8).")
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
# --- end train ---


if __name__ == "__main__":
    main()
