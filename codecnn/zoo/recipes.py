"""The recipes of the shipped models, and `rebuild`: corpus → training → held-out card.

A shipped model is only as good as the command that rebuilds it from nothing:

    codecnn zoo train rdn-vvc-ai             # corpus (resumable), training, card
    codecnn zoo train rdn-vvc-ai --install   # ... and copy it into codecnn/zoo/

Everything a recipe decides is here, in one table; the training run is an ordinary
`codecnn train` run (its RUN/config.json records the same configuration).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codecnn.errors import CodecnnError


@dataclass(frozen=True)
class Recipe:
    """A shipped model's data and training settings.

    codec/config: which corpus (`codecnn corpus --codec C --config K`);
    train: TrainConfig fields (data, val and monitor come from the corpus);
    extend_to: step counts the finished run is then resumed to, in turn, as `codecnn train
    --resume RUN --steps N` would: the cosine stretches from where it is, so each is a warm
    restart at a fraction of the learning rate.
    """

    name: str
    description: str
    codec: str
    config: str
    train: dict[str, Any] = field(default_factory=dict)
    extend_to: tuple[int, ...] = ()

    def stages(self, steps: int | None = None) -> list[int]:
        """The step counts trained to, in order; `steps` (a smaller test run) scales all."""
        base = int(self.train.get("steps", 1000))
        scale = 1.0 if steps is None else steps / base
        return [max(1, round(n * scale)) for n in (base, *self.extend_to)]


# Measured on this project's 2-core CPU (BENCHMARKS.md): fp32 with channels_last trains
# rdn-cpu on 64×64 crops at about 90 patches/s, faster than bf16 autocast there (about 50).
# Batch 64 of 64×64 crops: the coding error's learnable part is small next to its noise, and
# a first run at batch 16 with the full energy weighting had learned nothing after 6,000
# steps (validation and held-out gain 0.000 dB); 64 crops carry the pixels of 16 whole CTUs
# per step, from 64 places. The square-root QP weighting keeps QP 22 from being traded away
# without letting its nearly unpredictable error dominate the gradient.
_CPU_RECIPE: dict[str, Any] = {
    "preset": "rdn-cpu", "batch_size": 64, "crop": 64, "lr": 2e-3, "steps": 4000,
    "val_every": 1000, "log_every": 50, "sampling": "balanced", "dihedral": True,
    "qp_weighting": "sqrt", "amp": "off", "channels_last": True, "workers": 1,
    "in_memory": True, "seed": 0,
}

# The VVC model starts from the HEVC depth model's weights (its depth plane dropped). Trained
# from scratch, the recipe above learned nothing on VVC in 4,000 steps (held-out and
# validation gain 0.000 dB: VVC's deblocking, SAO and ALF leave an error close to white, and
# the zero-initialised network stayed at the identity), while from the HEVC weights it gains
# from the first validation on. `make zoo` therefore rebuilds and installs the HEVC model
# first; `zoo:rdn-hevc-ai-depth` is whichever is installed.
_VVC_FROM_HEVC: dict[str, Any] = {
    "init_from": "zoo:rdn-hevc-ai-depth", "lr": 1e-3, "steps": 3000, "val_every": 500,
    "log_every": 10,
}
# Its held-out gain was still rising at 3,000 steps (+0.055 dB mean); resumed to 6,000 (the
# cosine restarting at half the learning rate) it reached +0.067 dB at step 5,000.
_VVC_EXTEND_TO = (6000,)

RECIPES: dict[str, Recipe] = {
    "rdn-vvc-ai": Recipe(
        name="rdn-vvc-ai",
        description="VVC All Intra luma filter, one model for QP 22-37 (rec + qp planes), "
                    "fine-tuned from the HEVC depth model",
        codec="vvc", config="ai",
        train={**_CPU_RECIPE, **_VVC_FROM_HEVC, "planes": ("rec", "qp"),
               "val_sequences": ("Kite", "coffee", "gravel")},
        extend_to=_VVC_EXTEND_TO,
    ),
    "rdn-hevc-ai-depth": Recipe(
        name="rdn-hevc-ai-depth",
        description="HEVC All Intra luma filter with real CU depth from libde265 "
                    "(rec + qp + depth planes)",
        codec="hevc", config="ai",
        train={**_CPU_RECIPE, "planes": ("rec", "qp", "depth"), "steps": 2500,
               "val_sequences": ("Kite", "coffee", "gravel")},
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise CodecnnError(f"no recipe {name!r} (have: {', '.join(RECIPES)})")
    return RECIPES[name]


def train_config(recipe: Recipe, corpus_root: Path, steps: int | None = None,
                 device: str = "auto"):
    """The TrainConfig of a recipe on the corpus at corpus_root (OUT/<codec>-<config>)."""
    from codecnn.train import TrainConfig

    kw = dict(recipe.train)
    corpus_root = Path(corpus_root).resolve()  # as a resumed run's config reads it back
    if steps is not None:
        kw["steps"] = steps
    return TrainConfig(data=(str(corpus_root / "shards" / "train"),),
                       monitor=(str(corpus_root / "shards" / "heldout"),), device=device, **kw)


def rebuild(name: str, corpus: str | os.PathLike = "corpus",
            out_dir: str | os.PathLike = "zoo_runs", steps: int | None = None,
            device: str = "auto", jobs: int = 2, install: bool = False,
            wallpapers: bool = True, command: list[str] | None = None,
            echo=print, only: tuple[str, ...] | None = None,
            qps: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Build the corpus (resumable), train the recipe (resumes an unfinished run), evaluate
    on the held-out set always on and with CTU switching, and write the card.

    Writes OUT/NAME/run/ (the training run), OUT/NAME/heldout/ (the eval report) and
    OUT/NAME/NAME.{pt,json,md,png}; with install, copies the last four into codecnn/zoo/.
    `only`/`qps` restrict the corpus (a small test rebuild). Returns the card.
    """
    import time

    from codecnn.corpus import build_corpus, corpus_dir
    from codecnn.io.atomic import atomic_output
    from codecnn.zoo import ZOO_DIR

    recipe = get_recipe(name)
    out = Path(out_dir) / name
    echo(f"== {name}: corpus ({recipe.codec}-{recipe.config}) ==")
    t0 = time.perf_counter()
    corpus_rec = build_corpus(corpus, codec=recipe.codec, config=recipe.config, jobs=jobs,
                              wallpapers=wallpapers, only=only,
                              **({"qps": tuple(qps)} if qps else {}))
    echo(corpus_rec["table"])
    root = corpus_dir(corpus, recipe.codec, recipe.config)
    stages = recipe.stages(steps)
    config = train_config(recipe, root, stages[0], device)
    run = out / "run"
    echo(f"== {name}: train ({' then '.join(map(str, stages))} steps) -> {run} ==")
    summary = None
    for n in stages:
        summary = _train(replace(config, steps=n), run, command or sys.argv) or summary
    echo(f"== {name}: held-out evaluation ==")
    from codecnn.zoo.card import write_card

    heldout = [str(root / "coded" / s["name"]) for s in corpus_rec["sources"]
               if s["split"] == "heldout"]
    card = write_card(name, recipe, run, heldout, out, corpus_rec,
                      command=command or sys.argv, train_summary=summary,
                      seconds=time.perf_counter() - t0, stages=stages)
    if install:
        for suffix in (".pt", ".json", ".md", ".png"):
            src = out / f"{name}{suffix}"
            if src.is_file():
                with atomic_output(ZOO_DIR / src.name) as tmp:
                    shutil.copyfile(src, tmp)
        echo(f"installed {name} into {ZOO_DIR}")
    return card


def same_run(a, b) -> bool:
    """Two TrainConfigs compute the same run: equal fields, where a preset and its
    overrides count as equal when they build the same network (`--init-from` without
    --preset records the parent's architecture as overrides of "rdn")."""
    if replace(a, preset="", model_overrides={}) != replace(b, preset="", model_overrides={}):
        return False
    from codecnn.models import build_model, config_to_dict

    def net(c):
        return config_to_dict(build_model(c.preset, planes=c.planes, **c.model_overrides).config)

    return net(a) == net(b)


def _train(config, run: Path, command: list[str]) -> dict[str, Any] | None:
    """Train, or resume an interrupted run; a finished run is kept as it is."""
    from codecnn.models import read_checkpoint
    from codecnn.train import load_run_config, train_model

    last = run / "last.pt"
    if last.is_file():
        old = load_run_config(run)
        # the step count may grow (a recipe's extend_to), as `train --resume --steps N`
        if not same_run(replace(old, device=config.device, steps=config.steps), config):
            raise CodecnnError(f"{run}: holds a run of another configuration; remove it or "
                               f"give another -o")
        if int(read_checkpoint(last)["step"]) >= config.steps:
            return None
        resumed = old.resumed_with(steps=config.steps, device=config.device)
        return train_model(resumed, run, resume=True, command=command)
    return train_model(config, run, overwrite=True, command=command)
