"""Exceptions a user sees as one line.

Library code raises these (never calls sys.exit); the CLI turns any `CodecnnError` into a
one-line message and a non-zero exit. Messages name the file and what is wrong with it.
"""


class CodecnnError(Exception):
    """Base of every error the CLI reports as a single line."""


class YuvFormatError(CodecnnError):
    """A raw YUV file or its format description is wrong (size, bit depth, frame count)."""


class CodecError(CodecnnError):
    """FFmpeg, the encoder or the decoder failed or is missing; carries FFmpeg's last lines."""


class DataError(CodecnnError):
    """Input data (manifest, side-info map, HDF5 shard, checkpoint) is missing or malformed."""
