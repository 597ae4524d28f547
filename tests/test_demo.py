"""The demo's Fashion-MNIST subset: read from idx.gz files (Debian's layout), balanced, seeded, written once."""
import gzip
import struct

import numpy as np

from transferlearn.data import find_splits
from transferlearn.demo import CLASSES, make_demo_folder


def _write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_demo_folder_from_idx_files(tmp_path):
    src = tmp_path / "fashion"
    src.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 100), ("t10k", 50)):
        labels = np.arange(n) % 10
        images = (labels[:, None, None] * 20 + rng.integers(0, 10, (n, 28, 28))).astype(np.uint8)
        _write_idx(src / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", labels)
    out = make_demo_folder(n_train=40, n_val=20, out=tmp_path / "demo", source_dir=src)
    s = find_splits(out)
    assert s.classes == sorted(CLASSES)
    assert s.counts("train") == [4] * 10 and s.counts("val") == [2] * 10
    # written once: a second call reuses the folder
    mtime = (out / ".complete").stat().st_mtime_ns
    assert make_demo_folder(n_train=40, n_val=20, out=out, source_dir=src) == out
    assert (out / ".complete").stat().st_mtime_ns == mtime
