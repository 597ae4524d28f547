"""Training-step and inference throughput of one architecture under the settings that matter on a CPU.

    python bench/step_sweep.py --arch efficientnet_lite0
    python bench/step_sweep.py --arch efficientnet_lite0 --sizes 224 160 --amps bf16 off   # precision only
    python bench/step_sweep.py --arch efficientnet_lite0 --compile                         # torch.compile's cost

Synthetic tensors, no data loading: how image size, batch size, channels_last and bf16 change the cost
of one all-layers step (forward + backward + AdamW) and of one inference forward.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from transferlearn.engine import autocast, create_state, tune_malloc
from transferlearn.models import create_model
from transferlearn.modes import set_train


def make_step(arch: str, size: int, batch: int = 32, channels_last: bool = True, amp: str = "bf16",
              in_channels: int = 3, classes: int = 2, freeze_stages: int = 0, compile: bool = False):
    """(step, model, input): one all-layers training step (forward, backward, AdamW) on a synthetic batch, with
    the backbone's first `freeze_stages` stages frozen as `--freeze-stages` freezes them."""
    device = torch.device("cpu")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = create_model(arch, classes, weights="none", in_channels=in_channels).to(memory_format=fmt)
    st = create_state(m, "all-layers", "adamw", 1e-4, 0.9, 0.0, "none", 1, 1, 0.1, freeze_stages=freeze_stages)
    set_train(m, "all-layers", freeze_stages)
    x = torch.randn(batch, in_channels, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,))
    net = torch.compile(m) if compile else m

    def step():
        with autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        st.optimizer.zero_grad()
        loss.backward()
        st.optimizer.step()
    return step, m, x


def train_step(arch: str, size: int, batch: int = 32, channels_last: bool = True, amp: str = "bf16",
               steps: int = 5, keep_model: bool = False, warmup: int = 1, in_channels: int = 3, classes: int = 2,
               freeze_stages: int = 0):
    """(img/s, page faults per step) of all-layers training steps after `warmup` steps;
    with keep_model, also (model, input) for an inference measurement."""
    step, m, x = make_step(arch, size, batch, channels_last, amp, in_channels, classes, freeze_stages)
    for i in range(warmup + steps):
        if i == warmup:
            t0, f0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
    ips = batch * steps / (time.perf_counter() - t0)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps
    return (ips, faults, m, x) if keep_model else (ips, faults)


def throughput(arch: str, size: int, batch: int, channels_last: bool, amp: str, steps: int = 5,
               in_channels: int = 3) -> tuple[float, float]:
    """(train img/s, inference img/s) after one warm-up step each."""
    train, _, m, x = train_step(arch, size, batch, channels_last, amp, steps, keep_model=True, in_channels=in_channels)
    m.eval()
    with torch.no_grad(), autocast(torch.device("cpu"), amp):
        m(x)
        t0 = time.perf_counter()
        for _ in range(3):
            m(x)
    return train, batch * 3 / (time.perf_counter() - t0)


def compiled_step(arch: str, size: int, batch: int, amp: str, in_channels: int, steps: int = 5) -> tuple:
    """(eager img/s, seconds to compile, compiled img/s): what `--compile` costs once and saves per step."""
    eager, _ = train_step(arch, size, batch, True, amp, steps, in_channels=in_channels)
    step, _, _ = make_step(arch, size, batch, True, amp, in_channels, compile=True)
    t0 = time.perf_counter()
    step()  # compiles forward and backward
    compile_s = time.perf_counter() - t0
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return eager, compile_s, batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--in-channels", type=int, default=3)
    ap.add_argument("--tune-malloc", action="store_true", help="as train() does on a CPU (engine.tune_malloc)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="only these sizes, batch 32, channels_last (default: the whole grid)")
    ap.add_argument("--amps", nargs="+", default=["bf16"], choices=["bf16", "off"], help="with --sizes")
    ap.add_argument("--compile", action="store_true", help="eager against torch.compile at 224 px (or --sizes)")
    a = ap.parse_args()
    if a.tune_malloc:
        tune_malloc()
    head = f"{a.arch}, {a.in_channels} channel(s), {torch.get_num_threads()} threads, " \
           f"malloc {'tuned' if a.tune_malloc else 'default'}\n"
    if a.compile:
        print(head + "\n| size | batch | amp | eager img/s | compile s | compiled img/s |\n|---|---|---|---|---|---|")
        for size in a.sizes or [224]:
            eager, cs, comp = compiled_step(a.arch, size, 32, a.amps[0], a.in_channels)
            print(f"| {size} | 32 | {a.amps[0]} | {eager:.1f} | {cs:.1f} | {comp:.1f} |", flush=True)
        return
    grid = [(224, 32, True, "bf16"), (224, 32, True, "off"), (224, 32, False, "bf16"), (224, 64, True, "bf16"),
            (192, 32, True, "bf16"), (176, 32, True, "bf16"), (160, 32, True, "bf16"), (128, 32, True, "bf16")]
    if a.sizes:
        grid = [(size, 32, True, amp) for size in a.sizes for amp in a.amps]
    print(head + "\n| size | batch | channels_last | amp | train img/s | inference img/s |\n|---|---|---|---|---|---|")
    for size, batch, cl, amp in grid:
        tr, inf = throughput(a.arch, size, batch, cl, amp, in_channels=a.in_channels)
        print(f"| {size} | {batch} | {'yes' if cl else 'no'} | {amp} | {tr:.1f} | {inf:.1f} |", flush=True)


if __name__ == "__main__":
    main()
