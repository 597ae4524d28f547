"""Continuing a run: finding its checkpoint (falling back to the previous one when the newest is damaged),
and the run's own options with the few a resume may change."""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from ..errors import ResumeError
from ..runs import checkpoint as ckpt_io
from ..runs import run_folder  # noqa: F401  (--resume RUN|PATH: trainer.py asks here)
from .config import LEGACY, NOT_RESULTS, RESUMABLE, TrainConfig, option_flag, options_hash
from .state import STATE_VERSION


def has_checkpoint(folder: str | Path) -> bool:
    f = Path(folder)
    return (f / "last.pt").is_file() or (f / "last.prev.pt").is_file()


def load_resume_checkpoint(target: str | Path, warn=print) -> tuple[dict, Path]:
    """(checkpoint with training state, its path) from a run folder or a last.pt path. A truncated or
    corrupt last.pt falls back to last.prev.pt with a warning."""
    p = Path(target)
    if p.is_dir():
        if (p / "compare.yaml").is_file():
            raise ResumeError(f"{p} is a compare run; continue it with `transferlearn compare --resume {p}`")
        candidates = [p / "last.pt", p / "last.prev.pt"]
    elif p.suffix == ".pt" or p.is_file():
        candidates = [p, ckpt_io.previous_path(p)]
    else:
        raise ResumeError(f"--resume {target}: no such run folder or checkpoint. Give runs/NAME (a folder with "
                          f"last.pt) or a last.pt file; `--resume auto` starts fresh when there is none.")
    existing = [c for c in candidates if c.is_file()]
    if not existing:
        raise ResumeError(f"--resume {target}: {p} has no last.pt to continue from (a run writes it after its first "
                          f"epoch, or with --checkpoint-steps N every N steps). Start a new run instead.")
    problems = []
    for c in existing:
        try:
            ck = ckpt_io.read(c)
        except ckpt_io.CheckpointError as e:
            problems.append(str(e))
            continue
        if not isinstance(ck, dict) or ck.get("format") != ckpt_io.FORMAT or "train_state" not in ck:
            problems.append(f"{c} is not a transferlearn last.pt with training state")
            continue
        version = ck["train_state"].get("version", 1)
        if version != STATE_VERSION:
            raise ResumeError(f"{c} was written by an older transferlearn (training state v{version}; this version "
                              f"resumes v{STATE_VERSION}), so it cannot continue exactly. Start a new run from its "
                              f"weights: transferlearn train --weights {c} ...")
        for msg in problems:
            warn(f"warning: {msg}; resuming from the previous checkpoint {c} instead")
        return ck, c
    raise ResumeError(f"--resume {target}: no readable checkpoint: " + "; ".join(problems))


def _same(key: str, given, stored) -> bool:
    if key == "data":
        return Path(str(given)).resolve() == Path(str(stored)).resolve()
    return given == stored or (given is not None and stored is not None and str(given) == str(stored))


def resumed_config(ckpt: dict, given: dict) -> TrainConfig:
    """The run's own options, with the RESUMABLE ones in `given` applied; any other option in `given` that
    differs from the run's is an error naming it."""
    names = {f.name for f in fields(TrainConfig)}
    stored = TrainConfig(**{**LEGACY, **{k: v for k, v in ckpt["args"].items() if k in names}})
    bad = [k for k, v in given.items() if k in names and k not in RESUMABLE and v is not None
           and not _same(k, v, getattr(stored, k))]
    if bad:
        raise ResumeError("a resumed run keeps its own options; " + ", ".join(
            f"{option_flag(k)} {given[k]} differs from the run's {getattr(stored, k)}" for k in bad)
            + f". Only {', '.join(option_flag(k) for k in RESUMABLE if k not in ('resume',))} may change; "
              "start a new run (another --name) to train with other options.")
    cfg = TrainConfig(**{**asdict(stored), **{k: v for k, v in given.items() if k in RESUMABLE and v is not None}})
    if cfg.epochs < stored.epochs:
        raise ResumeError(f"--epochs {cfg.epochs} is below the run's {stored.epochs}; a resume may only raise it")
    return cfg


def check_same_options(ckpt: dict, cfg: TrainConfig) -> None:
    """--resume auto re-runs the whole command: its result-changing options must be the run's."""
    if ckpt.get("options_hash") == options_hash(cfg):
        return
    stored = {**LEGACY, **ckpt.get("args", {})}
    no_warmup = cfg.head_warmup == 0 == stored.get("head_warmup")  # then the warm-up's options change nothing
    idle = ("warmup_head", "warmup_views", "warmup_patience") if no_warmup else ()
    diff = [k for k, v in asdict(cfg).items()
            if k not in NOT_RESULTS + idle and not _same(k, v, stored.get(k))]
    if not diff:  # the same options; the hash differs because options were added since the run was made
        return
    raise ResumeError(f"--resume auto: {Path(cfg.project) / (cfg.name or cfg.mode)} was trained with other "
                      f"options ({', '.join(f'{option_flag(k)} {stored.get(k)} (now {getattr(cfg, k)})' for k in diff)}); "
                      f"use another --name, or the run's own options")


def resume_command(run_dir: Path, world_size: int, compare: bool = False) -> str:
    cmd = "compare" if compare else "train"
    if world_size > 1:
        return f"torchrun --nproc_per_node={world_size} -m transferlearn {cmd} --resume {run_dir}"
    return f"transferlearn {cmd} --resume {run_dir}"
