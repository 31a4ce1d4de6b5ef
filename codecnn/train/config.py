"""The resolved configuration of one training run (stored as RUN/config.json)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

LOSSES = ("mse", "l1")
AMP_MODES = ("auto", "bf16", "off")
SAMPLINGS = ("balanced", "stream")
QP_WEIGHTINGS = ("energy", "sqrt", "none")
# A resume continues the same run: what shapes the patch stream and the optimiser stays
# fixed. --steps may grow (the cosine then stretches from there on); the device, workers,
# --until and the like may change.
RESUME_FIXED = ("batch_size", "seed", "lr", "weight_decay", "loss", "warmup", "sampling",
                "source_weights", "crop", "dihedral", "qp_weighting", "val_sequences",
                "init_from", "budget_kmac")


class ResumeChange(ValueError):
    """A resume was asked to change what it must keep (RESUME_FIXED)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes (not where it writes).

    `steps` is the run's total number of optimizer steps (a resume continues up to it);
    `until` stops this invocation early at that step (a job's time limit), the schedule
    still being the one of `steps`. A step consumes batch_size patches on each process.
    """

    data: tuple[str, ...]
    val: tuple[str, ...] | None = None
    preset: str = "rdn-s"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    planes: tuple[str, ...] | None = None  # None: every plane the shards have
    steps: int = 1000
    # None: 16 on the CPU, 64 on a GPU (default_batch); a run records the value it resolved
    # to, so a resume keeps it.
    batch_size: int | None = None
    seed: int = 0
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = -1  # -1: min(500, steps // 20), at least 1
    loss: str = "mse"
    grad_clip: float = 0.0  # 0: off
    val_every: int = 500
    log_every: int = 10
    amp: str = "auto"  # auto: bf16 on GPU, off on CPU
    channels_last: bool | None = None  # None: on for GPU
    compile: bool = False
    workers: int = -1  # -1: 2 on CPU; on GPU min(8, cores per rank - 1) (h5py + decompression)
    full_ctus_only: bool = False  # train on whole CTUs only (validation always uses all)
    device: str = "auto"
    # The recipe (codecnn.train.sampling): "balanced" draws a source by its weight, then a
    # QP, then a patch; "stream" walks a permutation of all patches (a big source dominates).
    sampling: str = "balanced"
    source_weights: dict[str, float] = field(default_factory=dict)  # missing: 1.0
    crop: int | None = None  # train on crop×crop windows (+ border); validation: whole CTUs
    dihedral: bool = True  # one of the 8 symmetries per draw (balanced sampling only)
    # "energy": each patch's loss is divided by its QP's mean coding-error energy (measured
    # on the training data), so QP 22 counts as much as QP 37; "sqrt": by its square root,
    # half-way (in the log) between that and "none", the plain mean.
    qp_weighting: str = "none"
    val_sequences: tuple[str, ...] | None = None  # validation sources (split by sequence)
    monitor: tuple[str, ...] | None = None  # shards scored at each validation, never to choose
    in_memory: bool = False  # hold the decompressed shards in memory (fast random draws)
    init_from: str | None = None  # start from this checkpoint's weights (fresh optimizer)
    # Scale the family's width (or depth) to this many kMAC/px (codecnn.models.budget),
    # once the input planes are known; fields in model_overrides stay as given.
    budget_kmac: float | None = None

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.qp_weighting not in QP_WEIGHTINGS:
            raise ValueError(f"qp weighting must be one of {QP_WEIGHTINGS}, "
                             f"got {self.qp_weighting!r}")
        if self.crop is not None and self.crop < 4:
            raise ValueError(f"--crop must be at least 4, got {self.crop}")
        if self.sampling == "stream" and (self.crop or self.source_weights):
            raise ValueError("--crop and source weights need balanced sampling")
        self._check_numbers()

    def _check_numbers(self) -> None:
        for name in ("steps", "batch_size", "val_every", "log_every"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.budget_kmac is not None and not self.budget_kmac > 0:
            raise ValueError("--budget-kmac must be > 0")

    def loader_workers(self, cuda: bool, cores: int | None = None,
                       local_world: int | None = None) -> int:
        """DataLoader workers per process: `workers`, or 2 on the CPU; on a GPU the cores this
        process may run on (its CPU affinity) shared by the processes of its node
        (LOCAL_WORLD_SIZE under torchrun), less one for the process itself, at most 8."""
        if self.workers >= 0:
            return self.workers
        if not cuda:
            return 2
        if cores is None:
            cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 2)
        if local_world is None:
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, min(8, cores // max(1, local_world) - 1))

    def resumed_with(self, **changes: Any) -> TrainConfig:
        """This run's config with what a resume changes. ResumeChange naming the fields it
        must keep (RESUME_FIXED) when `changes` alters one; the warm-up keeps the length it
        was resolved to when the run started; ValueError for a bad value."""
        changed = [k for k in RESUME_FIXED if k in changes and changes[k] != getattr(self, k)]
        if changed:
            raise ResumeChange(f"--resume keeps the run's {', '.join(changed)} "
                               "(start a new run to change them)")
        if self.warmup < 0:
            changes["warmup"] = self.warmup_steps
        return dataclasses.replace(self, **changes)

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup >= 0 else max(1, min(500, self.steps // 20))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw.setdefault("sampling", "stream")  # runs recorded before balanced sampling existed
        for k in ("data", "val", "planes", "val_sequences", "monitor"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def default_batch(device: Any) -> int:
    """Patches per step and process when --batch-size is not given: 64 on a GPU (at 16 a
    step of rdn-s lasts about as long as launching its kernels), 16 on the CPU."""
    return 64 if str(device).startswith("cuda") else 16
