"""Evaluation: whole-frame CTU-tiled filtering, PSNR-Y, BD-rate, on/off switching, reports.

Entry points: `filter_yuv`, `evaluate_manifests`, `evaluate_data` (codecnn.evaluate.api);
building blocks: `TiledFilter` (tiling), `psnr` (metrics),
`bd_rate`/`bd_psnr` (bd), `switch_picture` (switching). Nothing heavy is imported here.
"""

from codecnn.evaluate.api import evaluate_data, evaluate_manifests, filter_yuv
from codecnn.evaluate.bd import bd_psnr, bd_rate
from codecnn.evaluate.switching import switch_picture
from codecnn.evaluate.tiling import TiledFilter
from codecnn.io.metrics import psnr

__all__ = ["TiledFilter", "bd_psnr", "bd_rate", "evaluate_data", "evaluate_manifests",
           "filter_yuv", "psnr", "switch_picture"]
