"""The run folder: runs/<name>/ with results.csv, args.yaml, classes.json, summary.json, TensorBoard."""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import yaml

RESULT_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


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


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_yaml(path: Path, obj) -> None:
    path.write_text(yaml.safe_dump(obj, allow_unicode=True, sort_keys=False), encoding="utf-8")


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

    def __init__(self, logdir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(logdir))
        except Exception as e:  # pragma: no cover - tensorboard is a dependency
            print(f"TensorBoard logging off ({e})")
            self.writer = None

    def log(self, row: dict, step: int) -> None:
        if self.writer is None:
            return
        for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"), ("train_acc", "accuracy/train"),
                         ("val_acc", "accuracy/val"), ("lr", "lr")):
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
