"""Checkpoints that carry everything needed later, loadable with weights_only=True, written so a crash
never loses one.

A checkpoint is a plain dict of tensors and primitives: no pickled classes, so loading one never runs
code. Keys: format, model (state_dict, never with DDP's `module.` prefixes), arch, num_classes, classes,
preprocess, mode, epoch, metrics, args, versions; last.pt also holds the training state for resume.

Writes are durable: a temp file in the same folder, flushed and fsynced, then renamed over the target
(`os.replace` is atomic), then the folder fsynced. For last.pt the previous file is kept as last.prev.pt
(a hard link, so last.pt never goes missing), so a resume always finds a whole checkpoint.
"""
from __future__ import annotations

import os
import pickle
import platform
from pathlib import Path

import torch

from ..errors import CheckpointError
from .folders import checkpoint_file


FORMAT = "transferlearn-checkpoint/1"


def versions() -> dict:
    import torchvision

    from .. import __version__
    return {"transferlearn": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def previous_path(path: str | os.PathLike) -> Path:
    """last.pt -> last.prev.pt"""
    p = Path(path)
    return p.with_name(f"{p.stem}.prev{p.suffix}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save(obj: dict, path: str | os.PathLike, keep_previous: bool = False) -> None:
    """Write atomically and durably; with keep_previous the old file becomes <stem>.prev<suffix>."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    prev = previous_path(path)
    link = prev.with_name(f".{prev.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            try:  # a second name for the old file, so `path` itself is never missing, not even for a moment
                os.link(path, link)
                os.replace(link, prev)
            except OSError:  # a file system without hard links: the old file moves instead
                os.replace(path, prev)
        os.replace(tmp, path)
    finally:
        for t in (tmp, link):
            if t.exists():
                t.unlink()
    _fsync_dir(path.parent)


def read(path: str | os.PathLike, what: str = "checkpoint"):
    """torch.load with weights_only=True, its failures turned into one line that says what the file is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} holds pickled Python objects (code), not just tensors, so it is refused: loading it could run "
            f"arbitrary code. If you trust it, re-save only its weights: "
            f"torch.save(torch.load(PATH, weights_only=False).state_dict(), 'weights.pt')") from None
    except Exception as e:  # torch.load on a file that is not its own fails in many ways (EOFError, IndexError...)
        size = path.stat().st_size
        raise CheckpointError(f"{path} ({size:,} bytes) is truncated or not a PyTorch file "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None


def load(path: str | os.PathLike) -> dict:
    path = checkpoint_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (pass a .pt file or a run folder with best.pt)")
    ckpt = read(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a transferlearn checkpoint (no format tag {FORMAT!r}); "
                              f"a bare state_dict can be used with `train --weights {path}`")
    return ckpt
