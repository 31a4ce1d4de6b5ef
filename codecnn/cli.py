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


if __name__ == "__main__":
    main()
