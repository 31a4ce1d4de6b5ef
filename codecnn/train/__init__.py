"""Training of the in-loop filter networks: loop, schedule, checkpoints, DDP, demo stage."""

from codecnn.train.config import TrainConfig
from codecnn.train.demo import run_train_stage
from codecnn.train.loop import NonFiniteLoss, evaluate, load_run_config, train_rdn

__all__ = ["NonFiniteLoss", "TrainConfig", "evaluate", "load_run_config", "run_train_stage",
           "train_rdn"]
