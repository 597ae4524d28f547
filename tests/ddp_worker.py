"""Run by torchrun in tests/test_distributed.py: trains through the Trainer and leaves, per rank, the
final weights it holds and ships (the moving average with --ema), to check that every process ends with the
same model."""
import json
import sys

import torch

from transferlearn.train import Trainer, TrainConfig
from transferlearn.train import distributed

cfg = TrainConfig(**json.loads(sys.argv[1]))
out = sys.argv[2]
t = Trainer(cfg).setup()
t.fit()
summary = t.finish()
torch.save({k: v.detach().cpu() for k, v in t.state.evaluated().state_dict().items()}, f"{out}/rank{t.ctx.rank}.pt")
if t.ctx.is_main:
    with open(f"{out}/summary.json", "w") as f:
        json.dump(summary, f)
distributed.shutdown()
