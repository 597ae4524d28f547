"""`data get`: local HTTP server only (never the internet): download, resume, checksums, safe extraction,
conversion of zip / idx / CIFAR archives, --from and packaged local copies, offline message."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import stat
import struct
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlearn import datasets as ds
from transferlearn.cli import main


class Server:
    """Serves `files` (name -> bytes) on 127.0.0.1 with Range support; `truncate_once` names files whose
    first response announces the full length but sends only half, then closes (a dropped connection)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                if name not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[name]
                start = 0
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if name in outer.truncate_once:
                    outer.truncate_once.discard(name)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes], symlinks: dict[str, str] = {}) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in symlinks.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def imagefolder_zip() -> bytes:
    m = {}
    for split, n in (("train", 3), ("val", 2)):
        for ci, c in enumerate(("ants", "bees")):
            for i in range(n):
                m[f"hymenoptera_data/{split}/{c}/{i}.png"] = png_bytes(ci * 10 + i)
    m["__MACOSX/hymenoptera_data/._x"] = b"junk"
    return make_zip(m)


@pytest.fixture
def zip_spec(server, monkeypatch):
    """A registered zip dataset served locally, with a known sha256 (so checksums are exercised)."""
    data = imagefolder_zip()
    server.files["hym.zip"] = data
    spec = ds.DatasetSpec("toy", "toy", [ds.Resource(server.url + "hym.zip", "hym.zip",
                                                     sha256=hashlib.sha256(data).hexdigest())], "zip")
    monkeypatch.setitem(ds.DATASETS, "toy", spec)
    return spec


def test_download_convert_and_record(zip_spec, tmp_path, server):
    out = ds.get("toy", tmp_path / "data", progress=False, log=lambda m: None)
    assert out == tmp_path / "data" / "toy"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))[:2] == ["train/ants/0.png",
                                                                                   "train/ants/1.png"]
    assert len(list((out / "val").rglob("*.png"))) == 4 and not (out / "__MACOSX").exists()
    src = json.loads((out / ds.SOURCE_FILE).read_text())
    assert src["files"][0]["verified"] == "sha256" and src["files"][0]["origin"] == "download"
    from transferlearn.data import find_splits
    assert find_splits(out).classes == ["ants", "bees"]
    # a second call finds it there and does not download again
    n = len(server.requests)
    ds.get("toy", tmp_path / "data", progress=False, log=lambda m: None)
    assert len(server.requests) == n


def test_truncated_download_is_resumed_with_range(server, tmp_path):
    data = bytes(range(256)) * 400
    server.files["big.bin"] = data
    server.truncate_once.add("big.bin")
    msgs = []
    path = ds.download(server.url + "big.bin", tmp_path / "big.bin", progress=False, log=msgs.append)
    assert path.read_bytes() == data
    assert server.requests[0] == ("big.bin", None)
    assert server.requests[1] == ("big.bin", f"bytes={len(data) // 2}-")
    assert any("resuming" in m for m in msgs)


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    data = b"x" * 5000 + b"y" * 5000
    server.files["f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data[:3000])
    ds.download(server.url + "f.bin", tmp_path / "f.bin", progress=False, log=lambda m: None)
    assert (tmp_path / "f.bin").read_bytes() == data and server.requests == [("f.bin", "bytes=3000-")]
    assert not (tmp_path / "f.bin.part").exists()


def test_wrong_checksum_refused_and_kept_aside(zip_spec, tmp_path):
    zip_spec.resources[0].sha256 = "0" * 64
    with pytest.raises(ds.ChecksumError, match="expected 0000"):
        ds.get("toy", tmp_path / "data", progress=False, log=lambda m: None)
    assert not (tmp_path / "data" / "toy").exists()
    assert (tmp_path / "data" / ".downloads" / "hym.zip.bad").is_file()  # kept, not deleted


def test_unknown_checksum_recorded_not_verified(zip_spec, tmp_path, capsys):
    zip_spec.resources[0].sha256 = None
    assert main(["data", "get", "toy", str(tmp_path / "d"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not verified" in out and "transferlearn train --data" in out
    rec = json.loads((tmp_path / "d" / "toy" / ds.SOURCE_FILE).read_text())["files"][0]
    assert rec["verified"] is False and len(rec["sha256"]) == 64


@pytest.mark.parametrize("evil", ["../escape.png", "/abs/escape.png", "a/../../escape.png", "C:/escape.png",
                                  "symlink"])
def test_zip_slip_and_symlinks_refused(evil, tmp_path):
    if evil == "symlink":
        data = make_zip({"d/train/a/1.png": png_bytes(1)}, symlinks={"d/train/a/link": "/etc/passwd"})
    else:
        data = make_zip({"d/train/a/1.png": png_bytes(1), evil: b"pwned"})
    (tmp_path / "evil.zip").write_bytes(data)
    with pytest.raises(ds.UnsafeArchiveError):
        ds.safe_extract_zip(tmp_path / "evil.zip", tmp_path / "out", progress=False)
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "out" / "d").exists()


def test_zip_slip_through_get_via_server(server, monkeypatch, tmp_path):
    server.files["evil.zip"] = make_zip({"d/train/a/1.png": png_bytes(1), "../../evil.txt": b"x"})
    monkeypatch.setitem(ds.DATASETS, "evil", ds.DatasetSpec("evil", "", [ds.Resource(server.url + "evil.zip",
                                                                                      "evil.zip")], "zip"))
    assert main(["data", "get", "evil", str(tmp_path / "d"), "--quiet"]) == 2
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "d" / "evil").exists()


def test_zip_without_utf8_flag_chinese_names(tmp_path):
    # a legacy zip (made on a Chinese Windows): GBK bytes in the names and no UTF-8 flag. zipfile cannot
    # write one, so write an ASCII placeholder of the same byte length and patch the bytes.
    gbk = "哈密瓜".encode("gbk")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("fruit/train/" + "X" * len(gbk) + "/1.png"), png_bytes(2))
    data = buf.getvalue().replace(b"X" * len(gbk), gbk)
    (tmp_path / "gbk.zip").write_bytes(data)
    assert not zipfile.ZipFile(tmp_path / "gbk.zip").infolist()[0].flag_bits & 0x800
    ds.safe_extract_zip(tmp_path / "gbk.zip", tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "fruit" / "train" / "哈密瓜" / "1.png").is_file()


def idx_bytes(arr: np.ndarray) -> bytes:
    return gzip.compress(bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def write_idx_files(folder: Path, n_train=12, n_val=5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            idx_bytes(rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.arange(n, dtype=np.uint8) % 10))
    return folder


def test_idx_from_folder_and_packaged_local_copy(tmp_path, monkeypatch):
    src = write_idx_files(tmp_path / "gz")
    # --from a folder: checksums known (torchvision's md5) but these synthetic files differ -> refused
    with pytest.raises(ds.ChecksumError, match="--no-verify"):
        ds.get("mnist", tmp_path / "d", from_path=src, progress=False, log=lambda m: None)
    out = ds.get("mnist", tmp_path / "d", from_path=src, no_verify=True, progress=False, log=lambda m: None)
    assert len(list((out / "train").rglob("*.png"))) == 12 and len(list((out / "val").rglob("*.png"))) == 5
    im = Image.open(out / "train" / "3" / "03.png")
    assert im.size == (28, 28) and im.mode == "L"
    # a packaged copy (like Debian's /usr/share/datasets/fashion-mnist) is found without network or --from
    spec = ds.DATASETS["fashion-mnist"]
    monkeypatch.setattr(spec, "local_dirs", [str(src)])
    monkeypatch.setattr(spec, "resources", [ds.Resource("http://127.0.0.1:9/x/" + r.filename, r.filename, md5=r.md5)
                                            for r in spec.resources])
    out = ds.get("fashion-mnist", tmp_path / "d", progress=False, log=lambda m: None)
    assert sorted(p.name for p in (out / "train").iterdir())[:2] == ["Ankle_boot", "Bag"]
    rec = json.loads((out / ds.SOURCE_FILE).read_text())["files"]
    assert {r["origin"] for r in rec} == {"local"} and all("packaged copy" in r["note"] for r in rec)


def test_truncated_idx_rejected(tmp_path):
    p = tmp_path / "x-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 28, 28) + b"\0" * 100))
    with pytest.raises(ds.DatasetGetError, match="truncated"):
        ds.read_idx(p)


def test_cifar10_tarball_and_code_in_pickle_refused(tmp_path, server, monkeypatch):
    rng = np.random.default_rng(0)

    def batch(n):
        return pickle.dumps({b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                             b"labels": list(np.arange(n) % 3)}, protocol=2)

    def tarball(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    members = {f"data_batch_{i}": batch(2) for i in range(1, 6)}
    members["test_batch"] = batch(3)
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane", b"bird", b"cat"]}, protocol=2)
    server.files["c.tgz"] = tarball(members)
    monkeypatch.setattr(ds.DATASETS["cifar10"], "resources", [ds.Resource(server.url + "c.tgz", "c.tgz")])
    out = ds.get("cifar10", tmp_path / "d", progress=False, log=lambda m: None)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["airplane", "bird", "cat"]
    assert len(list((out / "train").rglob("*.png"))) == 10 and len(list((out / "val").rglob("*.png"))) == 3
    assert Image.open(next((out / "val").rglob("*.png"))).size == (32, 32)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    members["batches.meta"] = pickle.dumps({b"label_names": [Evil()]}, protocol=2)
    (tmp_path / "evil.tgz").write_bytes(tarball(members))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        ds.get("cifar10", tmp_path / "e", from_path=tmp_path / "evil.tgz", progress=False, log=lambda m: None)


def test_offline_message_names_url_and_from(tmp_path, monkeypatch, capsys):
    # port 9 on 127.0.0.1 (discard) refuses connections: the same path as having no network
    monkeypatch.setattr(ds.DATASETS["hymenoptera"], "resources",
                        [ds.Resource("http://127.0.0.1:9/hymenoptera_data.zip", "hymenoptera_data.zip")])
    assert main(["data", "get", "hymenoptera", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/hymenoptera_data.zip" in err
    assert f"transferlearn data get hymenoptera {tmp_path / 'd'} --from PATH" in err
