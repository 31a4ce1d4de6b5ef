"""VVC specifics: VVenC options for a fixed QP in All Intra / Random Access.

With `-qpa 0` (no perceptual QP adaptation) and `IntraQPOffset=0:GOPQPA=0:BIM=0` VVenC
disables CU QP deltas (pps_cu_qp_delta_enabled_flag = 0): every CU of a picture has its
slice QP. In All Intra (`IntraPeriod=1`) every slice QP is then the nominal QP, as in the
JVET common test conditions; VVenC's defaults would shift it by 1-5 steps. In Random Access
the intra pictures carry the nominal QP and the others the GOP hierarchy's QP offsets.
(`MaxDeltaQP` is refused by VVenC once BIM is off, so it is never passed.)
"""

from __future__ import annotations

PRESETS = ("faster", "fast", "medium", "slow", "slower")
CONFIGS = ("ai", "ra")
FIXED_QP_PARAMS = ("IntraQPOffset=0", "GOPQPA=0", "BIM=0")


def vvenc_params(config: str, intra_period: int | None = None) -> str:
    """The `-vvenc-params` string: fixed-QP settings plus the intra period of `config`.

    ai: IntraPeriod=1 (every picture intra). ra: VVenC's random-access GOP (32 pictures,
    hierarchical B); IntraPeriod=`intra_period` when given, else VVenC's default of about one
    second (32 pictures at 30 fps).
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    params = list(FIXED_QP_PARAMS)
    if config == "ai":
        params.append("IntraPeriod=1")
    elif intra_period is not None:
        params.append(f"IntraPeriod={int(intra_period)}")
    return ":".join(params)


def vvenc_options(qp: int, config: str, preset: str = "medium",
                  intra_period: int | None = None) -> list[str]:
    """FFmpeg options after `-c:v libvvenc` for a fixed-QP encode (a pure function)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    return ["-preset", preset, "-qp", str(int(qp)), "-qpa", "0",
            "-vvenc-params", vvenc_params(config, intra_period)]
