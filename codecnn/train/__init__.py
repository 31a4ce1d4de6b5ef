"""Training of the in-loop filter networks: loop (setup, restore, fit, validate), schedule,
checkpoints, logs, DDP. `train_model` trains any family; the resume rule is on TrainConfig."""

from codecnn.train.config import TrainConfig
from codecnn.train.loop import NonFiniteLoss, evaluate, load_run_config, train_model

__all__ = ["NonFiniteLoss", "TrainConfig", "evaluate", "load_run_config", "train_model"]
