"""`codecnn demo`: the whole flow on sample content that ships with the dependencies.

Each stage is one library function; this module only chains them. Stage 1 encodes; the
later stages (extract, train, eval, analyze) are added as their packages land.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def run_demo(out_dir: str | os.PathLike, ffmpeg: str | os.PathLike | None = None,
             echo=print) -> dict[str, Any]:
    """Run every demo stage into `out_dir`; returns each stage's summary by name."""
    from codecnn.codec.stage import run_encode_stage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"encode": run_encode_stage(out, ffmpeg=ffmpeg, echo=echo)}
