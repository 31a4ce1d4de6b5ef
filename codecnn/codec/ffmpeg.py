"""Finding FFmpeg, checking what it can do, and running it in one place.

The FFmpeg binary is taken from (first match): an explicit path (`--ffmpeg`), the environment
variable `CODECNN_FFMPEG`, or the binary shipped in the `imageio-ffmpeg` wheel. Whatever is
found must have the encoder and decoder a codec needs (for VVC: `libvvenc` and the native
`vvc` decoder) and the `trace_headers` bitstream filter; otherwise a `CodecError` names the
binary and what it lacks.

`run` is the one place a command is executed: a failure raises `CodecError` carrying FFmpeg's
last lines of stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codecnn.errors import CodecError

ENV_VAR = "CODECNN_FFMPEG"
_TAIL_LINES = 6


@dataclass(frozen=True)
class FFmpeg:
    """A checked FFmpeg binary: its path, version line and the codecs it offers."""

    path: str
    version: str
    encoders: frozenset[str]
    decoders: frozenset[str]
    bsfs: frozenset[str]

    def require(self, encoder: str | None = None, decoder: str | None = None,
                bsf: str | None = None) -> None:
        """CodecError naming this binary when it lacks an encoder, decoder or filter."""
        missing = []
        if encoder and encoder not in self.encoders:
            missing.append(f"encoder {encoder}")
        if decoder and decoder not in self.decoders:
            missing.append(f"decoder {decoder}")
        if bsf and bsf not in self.bsfs:
            missing.append(f"bitstream filter {bsf}")
        if missing:
            raise CodecError(
                f"{self.path}: this FFmpeg lacks {', '.join(missing)} "
                f"(give --ffmpeg or {ENV_VAR} a build with them, e.g. imageio-ffmpeg's)"
            )


def _tail(text: str, n: int = _TAIL_LINES) -> str:
    """FFmpeg's last n log lines on one line, without the '[component @ 0x...]' prefixes."""
    lines = [re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", ln.strip())
             for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def run(cmd: Sequence[str], what: str, input: bytes | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure raise CodecError '<what>: ... <FFmpeg's last lines>'.

    Returns the completed process with stdout/stderr as bytes (stdout may be large binary
    data; stderr is what FFmpeg logs).
    """
    cmd = [str(c) for c in cmd]
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise CodecError(f"{what}: cannot run {cmd[0]} (no such file)") from None
    except PermissionError:
        raise CodecError(f"{what}: cannot run {cmd[0]} (not executable)") from None
    except OSError as e:
        raise CodecError(f"{what}: cannot run {cmd[0]} ({e.strerror or e})") from None
    except subprocess.TimeoutExpired:
        raise CodecError(f"{what}: {Path(cmd[0]).name} timed out after {timeout} s") from None
    if proc.returncode != 0:
        err = _tail(proc.stderr.decode("utf-8", "replace"))
        raise CodecError(f"{what}: {Path(cmd[0]).name} exited with {proc.returncode}: {err}")
    return proc


def _names(listing: str) -> frozenset[str]:
    """Names from `ffmpeg -encoders`/`-decoders` (flags column, then name) or `-bsfs`."""
    names = set()
    for line in listing.splitlines():
        m = re.match(r"^\s*[A-Z.]{6}\s+(\S+)", line)
        if m:
            names.add(m.group(1))
        elif re.fullmatch(r"[a-z0-9_]+", line.strip()):
            names.add(line.strip())
    return frozenset(names)


def locate_ffmpeg(path: str | os.PathLike | None = None) -> str:
    """The FFmpeg path to use: explicit path, then $CODECNN_FFMPEG, then imageio-ffmpeg's."""
    chosen = path or os.environ.get(ENV_VAR)
    if chosen:
        chosen = str(chosen)
        found = shutil.which(chosen) if os.sep not in chosen else None
        p = Path(found or chosen)
        if not p.is_file():
            raise CodecError(f"{chosen}: no such FFmpeg binary")
        return str(p.resolve())
    try:
        import imageio_ffmpeg
    except ImportError:
        raise CodecError(f"no FFmpeg: install imageio-ffmpeg or set {ENV_VAR}") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise CodecError(f"imageio-ffmpeg has no usable FFmpeg binary ({e})") from None


@lru_cache(maxsize=8)
def _probe(path: str) -> FFmpeg:
    what = f"{path}: probing FFmpeg"
    out = run([path, "-hide_banner", "-version"], what).stdout.decode("utf-8", "replace")
    first = out.splitlines()[0] if out.strip() else ""
    m = re.match(r"ffmpeg version (\S+)", first)
    if not m:
        raise CodecError(f"{path}: not an FFmpeg binary (its -version says {first[:60]!r})")
    listings = [
        run([path, "-hide_banner", flag], what).stdout.decode("utf-8", "replace")
        for flag in ("-encoders", "-decoders", "-bsfs")
    ]
    return FFmpeg(path, m.group(1), *(_names(t) for t in listings))


def find_ffmpeg(path: str | os.PathLike | None = None, encoder: str | None = "libvvenc",
                decoder: str | None = "vvc", bsf: str | None = "trace_headers") -> FFmpeg:
    """Locate and check FFmpeg; CodecError naming the binary if it cannot do the job."""
    ff = _probe(locate_ffmpeg(path))
    ff.require(encoder, decoder, bsf)
    return ff


@lru_cache(maxsize=8)
def encoder_version(ffmpeg_path: str, encoder: str = "libvvenc",
                    pattern: str | None = None) -> str:
    """The encoder library's version, as it logs it when opened (e.g. libvvenc '1.15.0-dev').

    Encodes one 16×16 black frame to nowhere; that is the only place FFmpeg reports it.
    `pattern` (a regex whose group 1 is the version) defaults to '<encoder> version: X'.
    """
    cmd = [ffmpeg_path, "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
           "color=black:s=16x16:r=1", "-frames:v", "1", "-pix_fmt", "yuv420p10le",
           "-c:v", encoder, "-f", "null", "-"]
    err = run(cmd, f"{ffmpeg_path}: reading the {encoder} version").stderr.decode(
        "utf-8", "replace")
    pattern = pattern or rf"{re.escape(encoder)} version:?\s*(\S+)"
    m = re.search(pattern, err, re.IGNORECASE)
    return m.group(1) if m else "unknown"
