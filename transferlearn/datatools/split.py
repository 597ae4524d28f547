"""`data split`: a folder of class folders -> DST/train, DST/val (and DST/test) on disk.

Stratified and seeded through `data.stratified_split3` (the same split `train --val-split` makes in
memory), so the result is the same on any machine for the same file names and seed. Files are
copied, or hard-linked with `link=True` (symlinks where hard links are impossible, e.g. across
filesystems). DST gets `split_manifest.csv` (one row per file) and `split_counts.csv` (per class).
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..data import VAL_NAMES, DatasetError, is_inside, list_class_dirs, list_images, stratified_split3

MANIFEST = "split_manifest.csv"
COUNTS = "split_counts.csv"
SPLITS = ("train", "val", "test")


@dataclass
class SplitResult:
    dst: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    methods: dict[str, int]  # copy / hardlink / symlink -> files
    warnings: list[str]


def _prepare_dst(src: Path, dst: Path, force: bool) -> None:
    if is_inside(dst, src):
        raise DatasetError(f"destination {dst} is inside the source {src}; it would be read as a class folder. "
                           f"Choose a destination outside {src}.")
    if is_inside(src, dst / "train") or any(is_inside(src, dst / s) for s in SPLITS[1:]):
        raise DatasetError(f"source {src} is inside the destination's split folders; choose another destination")
    if not dst.exists() or not any(dst.iterdir()):
        return
    if not force:
        raise DatasetError(f"destination {dst} is not empty; pass --force to replace an earlier split there, "
                           f"or choose an empty folder")
    # --force: remove only what an earlier `data split` wrote (listed in its manifest); refuse on anything else,
    # so stale files of an old split can never leak into the new one and no user file is ever deleted.
    man = dst / MANIFEST
    listed = set()
    if man.is_file():
        with open(man, newline="", encoding="utf-8") as f:
            listed = {row["path"] for row in csv.DictReader(f)}
    stray = []
    for s in SPLITS:
        if (dst / s).exists():
            for p in sorted((dst / s).rglob("*")):
                if (p.is_file() or p.is_symlink()) and p.relative_to(dst).as_posix() not in listed:
                    stray.append(p)
    if stray:
        raise DatasetError(f"destination {dst} holds {len(stray)} file(s) that no earlier `data split` wrote "
                           f"(e.g. {stray[0]}); refusing to mix them into a new split. Move them or choose "
                           f"another destination.")
    for rel in listed:
        p = dst / rel
        if p.is_file() or p.is_symlink():
            p.unlink()
    for s in SPLITS:
        if (dst / s).exists():
            for dirpath, _, _ in sorted(os.walk(dst / s), key=lambda t: -len(t[0])):
                if not os.listdir(dirpath):
                    os.rmdir(dirpath)


def _place(src: Path, dst: Path, link: bool) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            os.symlink(src.resolve(), dst)
            return "symlink"
    shutil.copy2(src, dst)
    return "copy"


def split_folder(src: str | os.PathLike, dst: str | os.PathLike, val: float = 0.2, test: float = 0.0,
                 seed: int = 123, link: bool = False, force: bool = False, progress: bool = True) -> SplitResult:
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DatasetError(f"source folder {src} does not exist")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(f"--val {val} and --test {test} must be fractions in [0, 1) with val + test < 1")
    if (src / "train").is_dir():
        also = " and val/" if any((src / v).is_dir() for v in VAL_NAMES) else ""
        raise DatasetError(f"{src} is already split (has a train/ folder{also}); point `data split` at a folder "
                           f"of class folders, e.g. {src / 'train'}")
    classes = list_class_dirs(src)
    if not classes:
        raise DatasetError(f"{src} has no class folders; expected {src}/<class>/<images>")
    samples, warnings = [], []
    for y, c in enumerate(classes):
        imgs = list_images(src / c)
        if not imgs:
            warnings.append(f"class folder {src / c} has no images; skipped")
        # relative names: the split then depends only on file names, not on where SRC is
        samples += [(Path(p).relative_to(src).as_posix(), y) for p in imgs]
    if not samples:
        raise DatasetError(f"no images under {src}/<class>/")
    classes_kept = sorted({classes[y] for _, y in samples})
    _prepare_dst(src, dst, force)
    dst.mkdir(parents=True, exist_ok=True)
    parts = dict(zip(SPLITS, stratified_split3(samples, val, test, seed)))

    counts = {s: [0] * len(classes) for s in SPLITS}
    methods: dict[str, int] = {}
    rows = []
    todo = [(s, rel, y) for s in SPLITS for rel, y in sorted(parts[s])]
    for s, rel, y in tqdm(todo, desc=f"{'linking' if link else 'copying'} to {dst}", unit="file",
                          disable=not progress, leave=False):
        out_rel = f"{s}/{rel}"
        how = _place(src / rel, dst / out_rel, link)
        methods[how] = methods.get(how, 0) + 1
        counts[s][y] += 1
        rows.append({"split": s, "class": classes[y], "path": out_rel, "source": rel, "method": how})
    for y, c in enumerate(classes):
        if c in classes_kept:
            if val > 0 and counts["val"][y] == 0:
                warnings.append(f"class {c!r} has too few images ({counts['train'][y]}) for a val image")
            if test > 0 and counts["test"][y] == 0:
                warnings.append(f"class {c!r} has too few images for a test image")

    with open(dst / MANIFEST, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["split", "class", "path", "source", "method"])
        w.writeheader()
        w.writerows(rows)
    used = [s for s in SPLITS if s != "test" or test > 0]
    per_class = {s: {c: counts[s][y] for y, c in enumerate(classes) if c in classes_kept} for s in used}
    res = SplitResult(dst=dst, classes=classes_kept, counts=per_class, methods=methods, warnings=warnings)
    with open(dst / COUNTS, "w", newline="", encoding="utf-8") as f:
        f.write(format_counts(res, csv_format=True))
    return res


def format_counts(res: SplitResult, csv_format: bool = False) -> str:
    """Per-class counts as an aligned table (or CSV text)."""
    used = list(res.counts)
    header = ["class", *used, "total"]
    body = []
    for c in res.classes:
        vals = [res.counts[s][c] for s in used]
        body.append([c, *map(str, vals), str(sum(vals))])
    tot = [sum(res.counts[s].values()) for s in used]
    body.append(["total", *map(str, tot), str(sum(tot))])
    if csv_format:
        import io
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header] + body)
        return buf.getvalue()
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i])  # noqa: E731
                                   for i, c in enumerate(cells))
    return "\n".join([line(header), line(["-" * x for x in w])] + [line(b) for b in body])
