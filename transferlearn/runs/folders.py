"""The run folder: runs/<name>/ with results.csv, args.yaml, classes.json, summary.json, TensorBoard."""
from __future__ import annotations

import csv
import json
import os
import re
from datetime import datetime
from pathlib import Path

import yaml

from ..errors import OptionsFileError, RunInUse


# time: the wall clock when the epoch ended, after its validation (ISO 8601 with its UTC offset), so a curve can be read
# against the clock: when a run first reached an accuracy (bench/peers.py's time to target), where it spent its time
RESULT_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "time"]


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def increment_path(project: str | os.PathLike, name: str, exist_ok: bool = False) -> Path:
    """runs/name, runs/name2, runs/name3 ... (the first that does not exist yet)."""
    base = Path(project) / name
    if exist_ok or not base.exists():
        return base
    m = re.match(r"^(.*?)(\d+)$", name)
    stem = m.group(1) if m else name
    i = 2
    while (Path(project) / f"{stem}{i}").exists():
        i += 1
    return Path(project) / f"{stem}{i}"


def checkpoint_file(path: str | os.PathLike, name: str = "best.pt") -> Path:
    """The checkpoint a path names: the file itself, or RUN/<name> for a run folder."""
    p = Path(path)
    return p / name if p.is_dir() else p


def run_folder(path: str | os.PathLike) -> Path:
    """The run folder a path names: the folder itself, or the one a .pt file is in (it need not exist yet)."""
    p = Path(path)
    return p.parent if p.suffix == ".pt" or p.is_file() else p


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_yaml(path: Path, obj) -> None:
    path.write_text(yaml.safe_dump(obj, allow_unicode=True, sort_keys=False), encoding="utf-8")


def read_yaml_mapping(path: str | os.PathLike, flag: str, missing_hint: str, mapping_hint: str) -> dict:
    """A YAML file of options (`train --cfg`, `tune --space`) as a dict; a missing, unreadable or non-mapping file is
    an OptionsFileError that names the flag and the file and says what to give instead."""
    path = Path(path)
    if not path.is_file():
        raise OptionsFileError(f"{flag} {path}: no such file; {missing_hint}")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise OptionsFileError(f"{flag} {path}: not a YAML file ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise OptionsFileError(f"{flag} {path}: holds a {type(d).__name__}; {mapping_hint}")
    return d


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """UTF-8 with BOM so that Excel shows Chinese class names correctly."""
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


class TensorBoardLogger:
    """Scalars to TensorBoard; silently absent if tensorboard is not installed."""

    def __init__(self, logdir: Path, purge_step: int | None = None):
        """purge_step: a resumed run hides any events logged at or after this step by the interrupted one."""
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(logdir), purge_step=purge_step)
        except Exception as e:  # pragma: no cover - tensorboard is a dependency
            print(f"TensorBoard logging off ({e})")
            self.writer = None

    def log(self, row: dict, step: int) -> None:
        if self.writer is None:
            return
        walltime = datetime.fromisoformat(row["time"]).timestamp() if row.get("time") else None
        for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("train_acc", "accuracy/train"),
                         ("val_acc", "accuracy/val"), ("lr", "lr"), ("train_size", "train_size")):
            if row.get(key) is not None:  # at the row's own time: the probe's row is logged after set-up ends
                self.writer.add_scalar(tag, row[key], step, walltime=walltime)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def claim_run_dir(project: str | os.PathLike, name: str, exist_ok: bool = False) -> Path:
    """Create and return the run folder. Without exist_ok the folder is made with mkdir's atomic "fail if
    it exists", so two trainings started at once with the same --name get name and name2, never one folder."""
    while True:
        folder = increment_path(project, name, exist_ok)
        try:
            folder.mkdir(parents=True, exist_ok=exist_ok)
            return folder
        except FileExistsError:  # another process took it between the check and the mkdir: try the next
            continue


class RunLock:
    """An exclusive lock on a run folder for as long as a training writes it (released by the kernel if the
    process dies, so a killed run can be resumed at once). POSIX only; elsewhere it does nothing."""

    def __init__(self, folder: Path):
        self.path, self.fd = Path(folder) / ".lock", None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUse(f"{self.path.parent} is being written by another training (pid {holder}); "
                           f"wait for it to finish, or use another --name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
