"""`data get`: known datasets -> DIR/NAME/train/<class>/*, DIR/NAME/val/<class>/* (ImageFolder layout).

Datasets are declared in sources.py (DATASETS, like models.ARCHS). Getting one:

1. find its archive(s): `--from FILE|DIR` first, then a packaged local copy (e.g. Debian's
   /usr/share/datasets/fashion-mnist), then the download cache DIR/.downloads, else download
   (progress bar; a partial DIR/.downloads/<file>.part is resumed with an HTTP Range request);
2. check it: sha256 or md5 where a published value is known (the md5s are the ones torchvision
   publishes for the same files); otherwise the sha256 is recorded and reported as not verified;
3. convert: zips are extracted safely (absolute paths, `..`, drive letters and symlink members are
   refused: nothing can land outside the target), MNIST-style idx.gz files and the CIFAR-10
   python tarball (read with a restricted unpickler: numpy arrays only, no code) become PNGs;
4. write DIR/NAME/transferlearn_source.json with the URLs, hashes and what was verified.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import stat
import struct
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from PIL import Image

from ..data import VAL_NAMES, is_hidden
from .sources import (DATASETS, SOURCE_FILE, ChecksumError, DatasetGetError, DatasetSpec, Resource,  # noqa: F401
                      UnsafeArchiveError, dataset_spec, list_datasets, register)  # (old code reaches these here)


# ---------------------------------------------------------------- download

def _bar(total, initial, desc, progress):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress, leave=False)


def download(url: str, dest: str | os.PathLike, progress: bool = True, retries: int = 3, timeout: float = 60,
             log: Callable[[str], None] = print) -> Path:
    """Download `url` to `dest` through `dest.part`; an existing .part is resumed (HTTP Range). A connection
    that ends early is retried from where it stopped, up to `retries` times."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_err = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "transferlearn"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
                length = r.headers.get("Content-Length")
                length = int(length) if length is not None else None
                if have and r.status == 206:
                    log(f"resuming {dest.name} at {have:,} bytes")
                    total, mode = (have + length if length is not None else None), "ab"
                else:  # no partial file, or a server that ignores Range: start over
                    have, total, mode = 0, length, "wb"
                with open(part, mode) as f, _bar(total, have, dest.name, progress) as bar:
                    while True:
                        chunk = r.read(1 << 16)
                        if not chunk:
                            break
                        f.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: the partial file is already complete
                break
            raise DatasetGetError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            last_err = e
            if isinstance(e, urllib.error.URLError) and not part.exists():
                break  # offline or no such host: retrying will not help
            time.sleep(min(2 ** attempt, 5) * 0.1)
            continue
        size = part.stat().st_size
        if total is None or size >= total:
            break
        last_err = IOError(f"connection closed after {size:,} of {total:,} bytes")
        log(f"{dest.name}: {last_err}; retrying")
    else:
        raise DatasetGetError(f"download of {url} did not complete after {retries + 1} tries ({last_err}); "
                              f"run the same command again to resume from {part}")
    if not part.exists():
        raise DatasetGetError(f"could not download {url}: {getattr(last_err, 'reason', last_err)}")
    os.replace(part, dest)
    return dest


def file_hashes(path: Path) -> dict[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def verify(path: Path, res: Resource) -> tuple[dict, str | None, bool]:
    """(hashes, which known checksum was checked or None, matched)."""
    h = file_hashes(path)
    if res.sha256:
        return h, "sha256", h["sha256"] == res.sha256.lower()
    if res.md5:
        return h, "md5", h["md5"] == res.md5.lower()
    return h, None, True


# ---------------------------------------------------------------- safe extraction

def _zip_name(info: zipfile.ZipInfo) -> str:
    """Member name with the right encoding: zips without the UTF-8 flag (bit 11) made on Chinese or other
    non-Western systems store UTF-8 or GBK bytes that zipfile decodes as cp437."""
    name = info.filename
    if info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")
    except UnicodeEncodeError:
        return name
    for enc in ("utf-8", "gbk"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            pass
    return name


def _safe_member(name: str, dest: Path) -> Path:
    norm = name.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {dest}; refusing the archive")
    target = (dest / norm).resolve()
    if target != dest and dest not in target.parents:
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {dest}; refusing the archive")
    return target


def safe_extract_zip(archive: str | os.PathLike, dest: str | os.PathLike, progress: bool = True) -> Path:
    """Extract a zip into `dest`, after checking every member: absolute paths, `..`, drive letters and symlink
    members are refused (the whole archive, before anything is written)."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise DatasetGetError(f"{archive} is not a valid zip file ({e}); delete it and download again") from e
    with z:
        plan = []
        for info in z.infolist():
            name = _zip_name(info)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"archive member {name!r} is a symbolic link; refusing the archive")
            plan.append((info, name, _safe_member(name, dest)))
        for info, name, target in tqdm(plan, desc="extracting", unit="file", disable=not progress, leave=False):
            if info.is_dir() or name.endswith(("/", "\\")):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest


# ---------------------------------------------------------------- converters

def _find_split_root(folder: Path) -> Path:
    """The folder (at most 3 levels down, junk skipped) that holds train/."""
    level = [folder]
    for _ in range(4):
        for d in level:
            if (d / "train").is_dir():
                return d
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir() and not is_hidden(c.name)]
    raise DatasetGetError(f"no train/ folder found in the extracted archive under {folder}")


def _convert_zip(spec: DatasetSpec, files: list[Path], work: Path, progress: bool) -> None:
    raw = safe_extract_zip(files[0], work / "_extracted", progress)
    root = _find_split_root(raw)
    for s in ("train", *VAL_NAMES, "test"):
        if (root / s).is_dir():
            shutil.move(str(root / s), str(work / ("val" if s in VAL_NAMES else s)))
    shutil.rmtree(raw)  # only what this function just extracted into its own work folder


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST format), gzipped or not, as a uint8 array."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetGetError(f"{path} is not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    if len(data) - 4 - 4 * ndim != int(np.prod(dims)):
        raise DatasetGetError(f"{path} is truncated: header says {dims}, {len(data):,} bytes present")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _write_pngs(images: np.ndarray, labels, classes: list[str], folder: Path, desc: str, progress: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
    width = len(str(len(images)))

    def save(i):
        Image.fromarray(images[i]).save(folder / classes[int(labels[i])] / f"{i:0{width}d}.png", compress_level=1)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for _ in tqdm(pool.map(save, range(len(images))), total=len(images), desc=desc, unit="img",
                      disable=not progress, leave=False):
            pass


def _convert_idx(spec: DatasetSpec, files: list[Path], work: Path, progress: bool) -> None:
    by = {f.name: f for f in files}
    for split, prefix in (("train", "train"), ("val", "t10k")):
        imgs = read_idx(by[f"{prefix}-images-idx3-ubyte.gz"])
        labels = read_idx(by[f"{prefix}-labels-idx1-ubyte.gz"])
        if len(imgs) != len(labels) or (labels.size and labels.max() >= len(spec.classes)):
            raise DatasetGetError(f"{prefix} images and labels do not match ({len(imgs)} vs {len(labels)})")
        _write_pngs(imgs, labels, spec.classes, work / split, f"{spec.name} {split}", progress)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays; any other global (i.e. code) is refused."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _unpickle(data: bytes) -> dict:
    obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _convert_cifar10(spec: DatasetSpec, files: list[Path], work: Path, progress: bool) -> None:
    with tarfile.open(files[0], "r:*") as tf:
        members = {PurePosixPath(m.name).name: m for m in tf.getmembers() if m.isfile()}

        def load(name):
            if name not in members:
                raise DatasetGetError(f"{files[0]} has no {name}; is it the CIFAR-10 *python* version?")
            return _unpickle(tf.extractfile(members[name]).read())

        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in load("batches.meta")["label_names"]]
        for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("val", ["test_batch"])):
            batches = [load(n) for n in names]
            x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
            y = np.concatenate([np.asarray(b["labels"]) for b in batches])
            x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            _write_pngs(np.ascontiguousarray(x), y, classes, work / split, f"{spec.name} {split}", progress)


CONVERTERS = {"zip": _convert_zip, "idx": _convert_idx, "cifar10": _convert_cifar10}


# ---------------------------------------------------------------- get

def _offline_message(spec: DatasetSpec, res: Resource, root: Path, err) -> str:
    what = "the archive" if len(spec.resources) == 1 else "the files (a folder holding " + \
        ", ".join(r.filename for r in spec.resources) + ")"
    return (f"could not download {spec.name}: {err}\n  download {what} yourself from\n    " +
            "\n    ".join(r.url for r in spec.resources) +
            f"\n  then run: transferlearn data get {spec.name} {root} --from PATH")


def _locate(spec: DatasetSpec, res: Resource, root: Path, from_path: Path | None, progress: bool, log):
    """(file, origin) for one resource; origin is 'from', 'local', 'cache' or 'download'."""
    if from_path is not None:
        if from_path.is_dir():
            p = from_path / res.filename
            if p.is_file():
                return p, "from"
            raise DatasetGetError(f"{from_path} has no {res.filename}")
        if from_path.is_file() and len(spec.resources) == 1:
            return from_path, "from"
        raise DatasetGetError(f"--from {from_path}: expected "
                              + ("the archive file" if len(spec.resources) == 1 else
                                 "a folder holding " + ", ".join(r.filename for r in spec.resources)))
    for d in spec.local_dirs:
        p = Path(d) / res.filename
        if p.is_file():
            return p, "local"
    cached = root / ".downloads" / res.filename
    if cached.is_file():
        return cached, "cache"
    try:
        return download(res.url, cached, progress=progress, log=log), "download"
    except DatasetGetError as e:
        if cached.with_name(cached.name + ".part").exists():
            raise  # a partial file: the message says to run again
        raise DatasetGetError(_offline_message(spec, res, root, e)) from e


def fetch(spec: DatasetSpec, root: str | os.PathLike, from_path: str | os.PathLike | None = None,
          no_verify: bool = False, progress: bool = True, log=print) -> tuple[list[Path], list[dict]]:
    """Steps 1-2 of `data get` (see the top): each of the spec's files found or downloaded, and checked.
    Returns the files in the spec's order and what is known of each (origin, hashes, verified)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    from_path = Path(from_path) if from_path else None
    files, record = [], []
    for res in spec.resources:
        path, origin = _locate(spec, res, root, from_path, progress, log)
        hashes, algo, ok = verify(path, res)
        entry = {"file": res.filename, "url": res.url, "path": str(path), "origin": origin, **hashes,
                 "verified": algo if ok and algo else False}
        if algo and not ok:
            expected = res.sha256 or res.md5
            if origin == "local":
                entry["note"] = (f"packaged copy (installed by the system's package manager): its {algo} differs "
                                 f"from the upstream file's ({expected}), e.g. recompressed; not verified, "
                                 f"only its structure is checked while converting")
                log(f"note: {path}: {entry['note']}")
            elif no_verify:
                entry["note"] = f"{algo} mismatch accepted with --no-verify (expected {expected})"
                log(f"warning: {path}: {entry['note']}")
            else:
                if origin in ("download", "cache"):
                    bad = path.with_name(path.name + ".bad")
                    os.replace(path, bad)
                    where = f"moved to {bad}; run again to download afresh"
                else:
                    where = "pass --no-verify to use it anyway"
                raise ChecksumError(f"{algo} of {path} is {hashes[algo]}, expected {expected}: the file is corrupt "
                                    f"or not the published one ({where})")
        elif not algo:
            entry["note"] = "no published checksum known: sha256 recorded, not verified"
            log(f"{res.filename}: sha256 {hashes['sha256']} (no published checksum known: recorded, not verified)")
        else:
            log(f"{res.filename}: {algo} verified")
        files.append(path)
        record.append(entry)
    return files, record


def get(name: str, root: str | os.PathLike = "data", from_path: str | os.PathLike | None = None,
        force: bool = False, no_verify: bool = False, progress: bool = True, log=print) -> Path:
    """Fetch and convert dataset `name` into ROOT/NAME (train/ and val/ class folders); returns that path."""
    spec = dataset_spec(name)
    root = Path(root)
    out = root / spec.name
    if out.exists() and any(out.iterdir()):
        if not force:
            log(f"{out} already exists; pass --force to rebuild it")
            return out
        if not (out / SOURCE_FILE).is_file():
            raise DatasetGetError(f"{out} exists and was not made by `data get` (no {SOURCE_FILE}); "
                                  f"move it away or choose another DIR")
    files, record = fetch(spec, root, from_path, no_verify=no_verify, progress=progress, log=log)

    work = root / f".{spec.name}.partial"
    if work.exists():
        shutil.rmtree(work)  # our own scratch folder from an interrupted run
    work.mkdir(parents=True)
    CONVERTERS[spec.kind](spec, files, work, progress)
    info = {"name": spec.name, "description": spec.description, "homepage": spec.homepage, "files": record,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (work / SOURCE_FILE).write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    if out.exists():
        old = root / f".{spec.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)  # replaced only after the new copy is complete
        os.replace(work, out)
        shutil.rmtree(old)
    else:
        os.replace(work, out)
    return out
