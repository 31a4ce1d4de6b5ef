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


# What a parser of outside data raises from deep inside when the data is inconsistent (a
# missing syntax element, a count past the end): turned into one of our errors at its border.
_MALFORMED = (KeyError, IndexError, ValueError, ZeroDivisionError, TypeError, OverflowError)


def malformed_input(what, error: type[CodecnnError] = DataError):
    """Decorator for a parser of outside data: its internal lookup errors become `error`
    ("<what>: malformed (...)"), so only codecnn's own errors leave it. `what` is a text
    or a function of the parser's arguments (e.g. the file's path)."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except _MALFORMED as e:
                detail = f"missing {e}" if isinstance(e, KeyError) else str(e)[:100]
                label = what(*args, **kwargs) if callable(what) else what
                raise error(f"{label}: malformed ({detail})") from None
        return inner

    return wrap
