"""Moved: the training loop lives in `transferlearn.train.loop` and the state in `transferlearn.train.state`.
This module keeps the old import path working."""
from .train.loop import autocast, evaluate, resolve_amp, to_device, train_one_epoch, tune_malloc  # noqa: F401
from .train.state import TrainState, build_optimizer, build_scheduler, create_state  # noqa: F401
