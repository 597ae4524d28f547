"""Moved: training lives in the `transferlearn.train` package (Trainer, callbacks, resume, DDP).
This module keeps `from transferlearn.trainer import train, compare, TrainConfig` working."""
from .train import Callback, TrainConfig, Trainer, TrainingInterrupted, compare, format_comparison, train  # noqa: F401
from .train.trainer import pick_device, seed_everything  # noqa: F401
