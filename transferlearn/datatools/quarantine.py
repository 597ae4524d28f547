"""`data check --fix`, `data audit --fix` and `--undo`: problem files moved (never deleted) into a quarantine folder with a
manifest written before each move, and moved back exactly; the dataset is only ever moved, not edited."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from ..data import is_inside
from .check import FIX_KINDS, MANIFEST, CheckReport


def default_quarantine(root: str | os.PathLike) -> Path:
    root = Path(root).resolve()
    return root.parent / f"{root.name}_quarantine"


def fix(report: CheckReport, quarantine: str | os.PathLike | None = None, log=print) -> list[dict]:
    """Move every file with a FIX_KINDS finding into `quarantine` (keeping its relative path) and append one
    manifest line per move, written before the move so an interrupted fix can still be undone."""
    todo = [{"path": f.path, "sha256": f.sha256, "is_dir": f.is_dir,
             "reasons": [f"{k}: {d}" for k, d in f.findings if k in FIX_KINDS]} for f in report.to_fix()]
    return move_aside(report.root, todo, quarantine, log=log)


def move_aside(root: str | os.PathLike, todo: list[dict], quarantine: str | os.PathLike | None = None,
               log=print) -> list[dict]:
    """Move each item {path (relative to `root`, '/'-separated), reasons, sha256 (None: computed), is_dir} into
    `quarantine` with a manifest line written before each move; `undo` puts them back. `data check --fix` and
    `data audit --fix` both move files through here, so one --undo serves both."""
    root = Path(root).resolve()
    q = Path(quarantine) if quarantine else default_quarantine(root)
    if is_inside(q, root):
        raise ValueError(f"quarantine folder {q} is inside the dataset {root}; choose one outside it")
    moved = []
    if not todo:
        return moved
    q.mkdir(parents=True, exist_ok=True)
    with open(q / MANIFEST, "a", encoding="utf-8") as man:
        for f in todo:
            src = root / f["path"]
            dst = q / f["path"]
            n = 1
            while dst.exists() or dst.is_symlink():  # an earlier fix quarantined a file with this name
                dst = q / f"{f['path']}.{n}"
                n += 1
            sha = f.get("sha256")
            if sha is None and not f.get("is_dir") and src.is_file():
                sha = hashlib.sha256(src.read_bytes()).hexdigest()
            entry = {"original": f["path"], "quarantined": dst.relative_to(q).as_posix(), "root": str(root),
                     "sha256": sha, "is_dir": bool(f.get("is_dir")), "reasons": list(f.get("reasons", [])),
                     "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            man.write(json.dumps(entry, ensure_ascii=False) + "\n")
            man.flush()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            moved.append(entry)
    log(f"moved {len(moved)} file(s)/folder(s) to {q} (manifest {q / MANIFEST}); "
        f"undo with: transferlearn data check --undo {q}")
    return moved


def undo(quarantine: str | os.PathLike, log=print) -> dict:
    """Move every quarantined file back to where it came from. Never overwrites: a file that reappeared at the
    original path is left in quarantine and reported. Returns counts {restored, skipped, missing}."""
    q = Path(quarantine)
    man_path = q / MANIFEST
    if not man_path.is_file():
        raise FileNotFoundError(f"{man_path} not found: {q} is not a quarantine folder made by `data check --fix`")
    entries = [json.loads(line) for line in man_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    left, restored, skipped, missing = [], 0, 0, 0
    for e in reversed(entries):  # last moved first, so numbered name clashes resolve in order
        src = q / e["quarantined"]
        dst = Path(e["root"]) / e["original"]
        if not (src.exists() or src.is_symlink()):
            if dst.exists():
                continue  # already restored by hand
            missing += 1
            log(f"missing from quarantine: {src}")
            left.append(e)
            continue
        if dst.exists() or dst.is_symlink():
            skipped += 1
            log(f"not restored (a file exists at {dst}): {src}")
            left.append(e)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        restored += 1
        if e.get("sha256") and not e.get("is_dir") and hashlib.sha256(dst.read_bytes()).hexdigest() != e["sha256"]:
            log(f"warning: {dst} was changed while in quarantine (sha256 differs from when it was moved)")
    if left:
        man_path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in reversed(left)),
                            encoding="utf-8")
    else:
        man_path.rename(q / f"restored-{time.strftime('%Y%m%d-%H%M%S')}.{MANIFEST}")
        for dirpath, _, _ in sorted(os.walk(q), key=lambda t: -len(t[0])):  # prune emptied folders
            if Path(dirpath) != q and not os.listdir(dirpath):
                os.rmdir(dirpath)
    log(f"restored {restored} file(s)/folder(s) from {q}" + (f"; {skipped} skipped, {missing} missing" if left else ""))
    return {"restored": restored, "skipped": skipped, "missing": missing}
