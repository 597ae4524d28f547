"""Training: options -> Trainer (setup, fit, finish) -> a run folder. Where to look:

- config.py       TrainConfig, the options a resume may change, the options hash
- trainer.py      Trainer and `train()`: setup -> fit -> finish
- loop.py         one epoch of steps, one validation pass (the same under 1 or N processes)
- precision.py    --amp auto's choice (on a CPU with AMX: fp32 or bf16, whichever trains this model faster)
- state.py        TrainState: everything that changes while training, saved and restored exactly
- callbacks.py    every file and console line a run writes (main process only)
- distributed.py  rank, world size, barrier, all-reduce (torchrun's environment; 1 process = world size 1)
- sampling.py     which samples each process sees, in which order, with which augmentation
- pipeline.py     files -> datasets -> batches;  augment.py: batched crops and flips keyed by (seed, epoch, sample)
- features.py     last-layer's frozen-feature setup step, and `data audit`'s features;  frozen.py: the frozen
                  backbone on onnxruntime or PyTorch
- warmup.py       all-layers' head warm-up (a linear probe, the run's epoch 0; --head-warmup, --warmup-head)
- resume.py       finding and checking the checkpoint a run continues from
- lr_find.py      the lr range test (`lr-find`, `train --lr find`): the run's setup, ~100 steps, weights put back
- compare.py      the modes side by side
"""
import sys

from ..lazy import face

# lazy, so that `transferlearn train --help` reads TrainConfig's defaults (config.py) without torch
__getattr__, __dir__, __all__ = face(__name__, {
    "callbacks": ("Callback",),
    "compare": ("format_comparison",),  # the function: train.compare.compare
    "config": ("TrainConfig",),
    "trainer": ("Trainer", "TrainingInterrupted", "train"),
})


class _CallablePackage(type(sys.modules[__name__])):
    """`transferlearn.train(...)` is the train function, but once this package is imported Python also binds
    the name `train` of `transferlearn` to it (a package's submodules become its attributes); calling the
    package calls the function, so the public API works either way."""

    def __call__(self, *args, **kwargs):
        from .trainer import train
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
