"""`data check`: find files that would break or silently bias training, and quarantine them.

Every file under the data folder is read once (in a thread pool: PIL decoding and hashing release
the GIL) and classified. Kinds of finding:

- problems (exit code 1; moved by `fix`): zero-byte, unreadable, truncated, wrong-extension, huge,
  duplicate (within a class), leak (same bytes in train and val/test), cross-class (same bytes under
  two labels), junk (hidden files, .DS_Store, __MACOSX ...), unknown-class, empty-class
- warnings (exit code 1, kept by `fix`): tiny
- notes (exit code 0): mode (non-RGB, converted at load time), ignored (not an image extension)

`fix` MOVES files, never deletes: into a quarantine folder outside the dataset with a manifest
(manifest.jsonl) from which `undo` puts every file back byte-identical.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from ..data import IMAGE_EXTENSIONS, VAL_NAMES, is_hidden, list_class_dirs, to_rgb

SPLIT_NAMES = ("train", *VAL_NAMES, "test")

# PIL format name -> the extensions that honestly describe it
FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg"), "MPO": (".jpg", ".jpeg"), "PNG": (".png",), "GIF": (".gif",), "BMP": (".bmp",),
    "WEBP": (".webp",), "TIFF": (".tif", ".tiff"), "PPM": (".ppm", ".pgm", ".pbm"),
}

PROBLEM_KINDS = ("zero-byte", "unreadable", "truncated", "wrong-extension", "huge", "duplicate", "leak",
                 "cross-class", "junk", "unknown-class", "empty-class")
WARNING_KINDS = ("tiny",)
NOTE_KINDS = ("mode", "ignored")
# what `fix` moves to quarantine (tiny images are often legitimate, e.g. 28x28 MNIST: reported, kept)
FIX_KINDS = ("zero-byte", "unreadable", "truncated", "wrong-extension", "huge", "duplicate", "leak",
             "cross-class", "junk")

MANIFEST = "manifest.jsonl"
# files transferlearn itself writes at the top of a dataset (datasets.SOURCE_FILE, split.MANIFEST, split.COUNTS)
METADATA_FILES = {"transferlearn_source.json", "split_manifest.csv", "split_counts.csv"}


@dataclass
class FileInfo:
    """One file (or one junk folder) under the data folder; `path` is relative to the root, '/'-separated."""
    path: str
    split: str | None = None
    cls: str | None = None
    size: int = 0
    sha256: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    findings: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    is_dir: bool = False
    image: bool = False  # an image-extension file inside a class folder (a training sample)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.findings]


@dataclass
class CheckReport:
    root: str
    layout: str  # "splits" (train/ val/ test/) or "classes" (a folder of class folders)
    files: list[FileInfo]
    min_size: int
    max_pixels: int | None
    folder_findings: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, path, detail)

    def findings(self, kinds=None):
        """(kind, path, detail) for every finding, optionally only of `kinds`."""
        out = [(k, f.path, d) for f in self.files for k, d in f.findings]
        out += list(self.folder_findings)
        return [x for x in out if kinds is None or x[0] in kinds]

    @property
    def problem_count(self) -> int:
        return len({p for k, p, _ in self.findings(PROBLEM_KINDS + WARNING_KINDS)})

    @property
    def clean(self) -> bool:
        return self.problem_count == 0

    def to_fix(self) -> list[FileInfo]:
        return [f for f in self.files if any(k in FIX_KINDS for k in f.kinds())]

    def table_rows(self) -> list[dict]:
        """One row per (split, class) plus an '(outside classes)' row; counts per kind."""
        rows: dict[tuple, dict] = {}

        def row(split, cls):
            key = (split or "", cls or "(outside classes)")
            if key not in rows:
                rows[key] = {"split": key[0], "class": key[1], "images": 0, "ok": 0,
                             **{k: 0 for k in PROBLEM_KINDS + WARNING_KINDS + NOTE_KINDS}}
            return rows[key]

        for f in self.files:
            r = row(f.split, f.cls)
            if f.image:
                r["images"] += 1
                r["ok"] += not any(k in PROBLEM_KINDS + WARNING_KINDS for k in f.kinds())
            for k in set(f.kinds()):
                r[k] += 1
        for k, p, _ in self.folder_findings:
            parts = p.split("/")
            split, cls = (parts[0], parts[1] if len(parts) > 1 else None) if self.layout == "splits" \
                else (None, parts[0])
            row(split, cls)[k] += 1
        order = {s: i for i, s in enumerate(("",) + SPLIT_NAMES)}
        return sorted(rows.values(), key=lambda r: (r["class"] == "(outside classes)", order.get(r["split"], 99),
                                                    r["split"], r["class"]))

    def to_dict(self) -> dict:
        return {"root": self.root, "layout": self.layout, "clean": self.clean, "problem_files": self.problem_count,
                "min_size": self.min_size, "max_pixels": self.max_pixels,
                "summary": self.table_rows(),
                "findings": [{"kind": k, "path": p, "detail": d} for k, p, d in self.findings()],
                "files": [asdict(f) for f in self.files]}


# ---------------------------------------------------------------- scanning

def _inspect(path: Path, info: FileInfo, min_size: int, max_pixels: int | None) -> FileInfo:
    """Read, hash and fully decode one file; record findings on `info`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        info.findings.append(("unreadable", f"cannot read: {e.strerror or e}"))
        return info
    info.size = len(data)
    if not data:
        info.findings.append(("zero-byte", "empty file"))
        return info
    info.sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        info.findings.append(("huge", str(e).split(".")[0]))
        return info
    except Exception as e:
        info.findings.append(("unreadable", f"not an image PIL can open ({type(e).__name__})"))
        return info
    with im:
        info.format, info.mode = im.format, im.mode
        info.width, info.height = im.size
        ext = path.suffix.lower()
        allowed = FORMAT_EXTENSIONS.get(im.format or "", ())
        if allowed and ext not in allowed:
            info.findings.append(("wrong-extension", f"{im.format} content named {ext}"))
        if max_pixels and im.width * im.height > max_pixels:
            info.findings.append(("huge", f"{im.width}x{im.height} = {im.width * im.height:,} pixels "
                                          f"> {max_pixels:,} (decompression-bomb guard)"))
            return info
        try:
            im.seek(0)
            im.load()
        except OSError as e:
            msg = str(e)
            kind = "truncated" if "truncated" in msg or "broken data stream" in msg else "unreadable"
            info.findings.append((kind, f"decoding failed: {msg}"))
            return info
        except Exception as e:
            info.findings.append(("unreadable", f"decoding failed: {type(e).__name__}: {e}"))
            return info
        if im.mode != "RGB":
            try:
                to_rgb(im)
                info.findings.append(("mode", f"{im.mode} converted to RGB at load time"))
            except Exception as e:
                info.findings.append(("unreadable", f"{im.mode} cannot be converted to RGB: {e}"))
                return info
    if min_size and min(info.width, info.height) < min_size:
        info.findings.append(("tiny", f"{info.width}x{info.height} < {min_size} px"))
    return info


def _walk(root: Path):
    """Yield FileInfo stubs for every entry: regular files under class folders get split/cls set;
    hidden/junk names (files or whole folders) are returned as junk without descending into them."""
    found_splits = [d for d in SPLIT_NAMES if (root / d).is_dir()]
    layout = "splits" if "train" in found_splits else "classes"
    entries: list[tuple[FileInfo, bool]] = []  # (stub, inspect as image?)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # as files.list_images
        rel_dir = Path(dirpath).relative_to(root)
        parts = rel_dir.parts
        keep = []
        for d in sorted(dirnames):
            if is_hidden(d):
                entries.append((FileInfo(path=(rel_dir / d).as_posix(), is_dir=True,
                                         **_place(parts + (d,), layout)), False))
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            stub = FileInfo(path=rel, **_place(parts + (name,), layout))
            if is_hidden(name):
                entries.append((stub, False))
            else:
                entries.append((stub, True))
    return layout, entries


def _place(parts: tuple, layout: str) -> dict:
    """split and class of a path (as parts relative to the root), None where it is outside them."""
    if layout == "splits":
        split = parts[0] if len(parts) > 1 and parts[0] in SPLIT_NAMES else None
        cls = parts[1] if split and len(parts) > 2 else None
        return {"split": split or (parts[0] if len(parts) > 1 else None), "cls": cls}
    return {"split": None, "cls": parts[0] if len(parts) > 1 else None}


def check(root: str | os.PathLike, min_size: int = 32, max_pixels: int | None = None, workers: int | None = None,
          progress: bool = True) -> CheckReport:
    """Scan `root` and return a CheckReport; nothing is changed on disk."""
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if max_pixels is None:
        max_pixels = Image.MAX_IMAGE_PIXELS
    layout, entries = _walk(root)
    report = CheckReport(root=str(root), layout=layout, files=[], min_size=min_size, max_pixels=max_pixels)

    to_inspect = []
    for stub, as_image in entries:
        in_class = stub.cls is not None and (layout == "classes" or stub.split in SPLIT_NAMES)
        if not as_image:
            what = "folder" if stub.is_dir else "file"
            stub.findings.append(("junk", f"hidden/system {what}; never a sample"))
            report.files.append(stub)
        elif stub.path in METADATA_FILES:
            continue  # written by `data get` / `data split` next to the class folders
        elif Path(stub.path).suffix.lower() not in IMAGE_EXTENSIONS or not in_class:
            where = "not an image extension" if in_class else "outside any class folder"
            stub.findings.append(("ignored", f"{where}; training skips it"))
            report.files.append(stub)
        else:
            stub.image = True
            to_inspect.append(stub)

    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = pool.map(lambda s: _inspect(root / s.path, s, min_size, max_pixels), to_inspect)
        report.files.extend(tqdm(it, total=len(to_inspect), desc=f"checking {root}", unit="file",
                                 disable=not progress, leave=False))
    report.files.sort(key=lambda f: f.path)
    _find_duplicates(report)
    _check_classes(root, report)
    return report


_SPLIT_RANK = {"train": 0, **{n: 1 for n in VAL_NAMES}, "test": 2}


def _find_duplicates(report: CheckReport) -> None:
    """Exact duplicates by sha256. Same class: keep the copy in the earliest split (train first), flag the
    rest (leak when they cross splits). Different classes: the label is ambiguous, flag every copy."""
    groups: dict[str, list[FileInfo]] = {}
    for f in report.files:
        if f.sha256 and f.format is not None:
            groups.setdefault(f.sha256, []).append(f)
    for copies in groups.values():
        if len(copies) < 2:
            continue
        # keep train's copy, then the shortest name ("x.jpg" over "x (copy).jpg")
        copies.sort(key=lambda f: (_SPLIT_RANK.get(f.split or "", 3), len(f.path), f.path))
        classes = {f.cls for f in copies}
        others = lambda f: ", ".join(g.path for g in copies if g is not f)  # noqa: E731
        if len(classes) > 1:
            for f in copies:
                f.findings.append(("cross-class", f"same bytes under classes {', '.join(sorted(map(str, classes)))}: "
                                                  f"{others(f)}"))
            continue
        keep = copies[0]
        for f in copies[1:]:
            kind = "leak" if f.split != keep.split else "duplicate"
            f.findings.append((kind, f"same bytes as {keep.path}"))


def _check_classes(root: Path, report: CheckReport) -> None:
    if report.layout != "splits":
        for c in list_class_dirs(root):
            if not any(f.cls == c and f.format for f in report.files):
                report.folder_findings.append(("empty-class", c, "class folder with no images"))
        return
    train = list_class_dirs(root / "train")
    for split in SPLIT_NAMES:
        if not (root / split).is_dir():
            continue
        for c in list_class_dirs(root / split):
            if split != "train" and c not in train:
                report.folder_findings.append(("unknown-class", f"{split}/{c}",
                                               f"class not in train/ ({', '.join(train)}); training refuses this"))
            elif not any(f.split == split and f.cls == c and f.format for f in report.files):
                report.folder_findings.append(("empty-class", f"{split}/{c}", "class folder with no images"))


# ---------------------------------------------------------------- output

_COLUMNS = [("images", "images"), ("ok", "ok"), ("unreadable", "zero-byte+unreadable+truncated"),
            ("wrong ext", "wrong-extension"), ("non-RGB", "mode"), ("tiny", "tiny"), ("huge", "huge"),
            ("dup", "duplicate"), ("leak", "leak"), ("x-class", "cross-class"), ("junk", "junk"),
            ("ignored", "ignored")]


def format_report(report: CheckReport, max_list: int = 20) -> str:
    """Human-readable table per (split, class), then the problem files grouped by kind."""
    rows = report.table_rows()
    header = ["split", "class"] + [c for c, _ in _COLUMNS]
    body = []
    totals = [0] * len(_COLUMNS)
    for r in rows:
        vals = []
        for i, (_, keys) in enumerate(_COLUMNS):
            v = sum(r[k] for k in keys.split("+"))
            totals[i] += v
            vals.append(v)
        body.append([r["split"] or "-", r["class"]] + [str(v) if v else "." for v in vals])
    body.append(["total", ""] + [str(v) for v in totals])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [f"data check {report.root} ({'train/val/test folders' if report.layout == 'splits' else 'class folders'},"
             f" min size {report.min_size} px, max {report.max_pixels:,} pixels)", "", fmt(header),
             fmt(["-" * w for w in widths])]
    lines += [fmt(b) for b in body]
    by_kind: dict[str, list] = {}
    for k, p, d in report.findings():
        by_kind.setdefault(k, []).append((p, d))
    for kind in PROBLEM_KINDS + WARNING_KINDS + NOTE_KINDS:
        items = by_kind.get(kind)
        if not items:
            continue
        label = "problem" if kind in PROBLEM_KINDS else "warning" if kind in WARNING_KINDS else "note"
        lines += ["", f"{kind} ({label}, {len(items)}):"]
        if kind == "tiny":
            lines[-1] += " images small by nature (e.g. 28x28 MNIST) are fine: lower --min-size to silence this"
        if kind in NOTE_KINDS:  # often thousands of the same note: one line per distinct detail
            groups: dict[str, list[str]] = {}
            for p, d in items:
                groups.setdefault(d, []).append(p)
            for d, ps in sorted(groups.items(), key=lambda t: -len(t[1]))[:max_list]:
                lines.append(f"  {len(ps)} file(s): {d} (e.g. {ps[0]})" if len(ps) > 1 else f"  {ps[0]}: {d}")
            continue
        for p, d in items[:max_list]:
            lines.append(f"  {p}: {d}")
        if len(items) > max_list:
            lines.append(f"  ... and {len(items) - max_list} more (--json lists all)")
    lines.append("")
    if report.clean:
        lines.append("clean: no problems found")
    else:
        n_fix = len(report.to_fix())
        lines.append(f"{report.problem_count} file(s)/folder(s) with problems; {n_fix} can be moved to quarantine "
                     f"with --fix (tiny images are kept; empty/unknown class folders need a decision from you)")
    return "\n".join(lines)
