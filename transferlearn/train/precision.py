"""Which precision a run trains in: `--amp auto`'s choice.

On a GPU: bf16 where it is supported, fp16 on older GPUs. On a CPU without AMX: fp32 (AVX-512's bf16
instructions alone trained 1.5x slower than fp32). On a CPU with AMX, bf16 pays on some models and not on others
(2 cores with AMX, 160 px, batch 32: ResNet-18 2.3x faster in bf16, MobileNetV2 even, EfficientNet-Lite0 1.44x
SLOWER, its depthwise convolutions and BatchNorm gaining nothing from AMX's matrix tiles), so there the run times
both on its own model and batch shape and keeps the faster, as cudnn.benchmark picks convolution algorithms. The
answer is kept in the cache folder for that CPU, torch, model and shape, so a second run does not measure again,
and a resumed run keeps the precision its checkpoint was trained in.
"""
from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..data.cacheroot import default_cache_root
from ..machine import cpu_name
from ..models.device import autocast
from ..modes import backbone_frozen, set_train

BF16_MARGIN = 1.10  # bf16 must be this much faster: it costs precision, and within noise fp32 is the safer choice


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision without measuring: 'auto' is bf16 on CUDA GPUs that support it (fp16 on older ones) and on CPUs
    with AMX (where a training run then measures it: choose_amp), else off."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_amx() else "off"


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles for bf16 matrix products (Intel Sapphire Rapids and later)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        if probe is not None:
            return bool(probe())
        return "AMX" in torch.backends.cpu.get_cpu_capability().upper()
    except Exception:
        return False


def step_speeds(model: nn.Module, shape: tuple[int, ...], mode: str, freeze_stages: int = 0,
                amps: tuple[str, ...] = ("off", "bf16"), rounds: int = 2) -> dict[str, float]:
    """Images per second of one forward + backward in each of `amps`, on a copy of `model` (CPU, channels_last,
    synthetic batch): two warm-up steps each, then `rounds` steps each in turn, the fastest kept (the first fp32
    step of a process pays for its fresh memory: 38 img/s against 46-50 later for Lite0 here). The run's own
    weights, BatchNorm statistics and random state are untouched: the run that follows is the same as it would
    have been without measuring."""
    m = copy.deepcopy(model)
    set_train(m, mode, freeze_stages)
    device, best = torch.device("cpu"), {a: float("inf") for a in amps}
    with torch.random.fork_rng(devices=[]):
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        for r in range(rounds + 2):
            for amp in amps:
                t0 = time.perf_counter()
                with autocast(device, amp):
                    out = m(x)
                out.float().logsumexp(1).mean().backward()
                m.zero_grad(set_to_none=True)
                if r > 1:  # rounds 0 and 1 warm up
                    best[amp] = min(best[amp], time.perf_counter() - t0)
    return {a: shape[0] / t for a, t in best.items()}


def choose_amp(amp: str, device: torch.device, model: nn.Module, arch: str, shape: tuple[int, ...], mode: str,
               freeze_stages: int, cache_dir: str | os.PathLike, log: Callable[[str], None] = print,
               measure: Callable[..., float] | None = None) -> str:
    """`amp` as the run will train: resolve_amp's answer, except that 'auto' on a CPU with AMX is whichever of fp32
    and bf16 trains this model on batches of `shape` faster (measured once, then read from `cache_dir`/amp.json)."""
    chosen = resolve_amp(amp, device)
    if amp != "auto" or device.type != "cpu" or chosen != "bf16" or backbone_frozen(mode):
        return chosen  # a frozen backbone's features come from onnxruntime in fp32 (frozen.py): nothing to time
    key = json.dumps({"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "arch": arch, "shape": list(shape), "mode": mode, "freeze_stages": freeze_stages}, sort_keys=True)
    path = Path(cache_dir) / "amp.json"
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known:
        speeds = known[key]
        how = f"measured earlier on this CPU, kept in {path}"
    else:
        try:
            speeds = {a: round(v, 1) for a, v in (measure or step_speeds)(model, shape, mode, freeze_stages).items()}
        except Exception as e:  # a speed probe must never stop a run
            log(f"amp auto: bf16 (this CPU has AMX; timing fp32 against bf16 failed: {e})")
            return chosen
        how = f"measured now on this CPU; kept in {path}"
        known[key] = speeds
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            how = f"measured now on this CPU; not kept ({e})"
    chosen = "bf16" if speeds["bf16"] >= BF16_MARGIN * speeds["off"] else "off"
    log(f"amp auto: {'bf16' if chosen == 'bf16' else 'fp32'} (this CPU has AMX; one training step at batch "
        f"{'x'.join(map(str, shape))}: fp32 {speeds['off']:g} img/s, bf16 {speeds['bf16']:g} img/s; {how}; "
        f"--amp bf16 or --amp off to choose)")
    return chosen


def run_precision(cfg, ctx, device: torch.device, model: nn.Module, ckpt: dict | None, log=print) -> str:
    """The precision a training run trains in: a resumed run's checkpoint's (older checkpoints: the old rule), else
    choose_amp's, measured by the main process and the same on every process."""
    if ckpt is not None and cfg.amp == "auto":
        return ckpt.get("amp") or resolve_amp(cfg.amp, device)
    shape = (cfg.batch_size, cfg.in_channels, cfg.train_size, cfg.train_size)
    return ctx.broadcast(choose_amp(cfg.amp, device, model, cfg.arch, shape, cfg.mode, cfg.freeze_stages,
                                    cfg.cache_dir or default_cache_root(), log=log) if ctx.is_main else None)


def probe_first(cfg, device: torch.device, resumed: bool) -> bool:
    """Whether all-layers' head warm-up runs before `--amp auto` times fp32 against bf16. Its features are fp32
    either way (onnxruntime; PyTorch's fallback in fp32 too), and the probe is epoch 0, on small data often the best
    model: on a first run on hymenoptera (AMX CPU) the timing held it back by about 8 of its 22 seconds."""
    return (cfg.amp == "auto" and device.type == "cpu" and bool(cfg.head_warmup) and not resumed
            and not cfg.feature_cache and resolve_amp(cfg.amp, device) == "bf16")
