"""One epoch of a last-layer head on cached features (flowers: 2,569 features of 1,280, EfficientNet-Lite0's width,
batch 32, AdamW), timed with N torch threads, fp32 or bf16 autocast: why `tune` trains last-layer heads on one thread.

    python bench/head_threads.py 1 off; python bench/head_threads.py 2 off
"""
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))
x, y = torch.randn(2569, 1280), torch.randint(5, (2569,))
head = torch.nn.Linear(1280, 5)
opt = torch.optim.AdamW(head.parameters(), 1e-3)
t = time.perf_counter()
for i in range(0, 2569, 32):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=sys.argv[2] == "bf16"):
        loss = torch.nn.functional.cross_entropy(head(x[i:i + 32]).float(), y[i:i + 32])
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"threads {sys.argv[1]} amp {sys.argv[2]}: epoch {time.perf_counter() - t:.3f} s "
      f"({torch.backends.cpu.get_cpu_capability()})")
