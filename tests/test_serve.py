"""`transferlearn serve`: JSON API over a real loopback socket, upload limits, the page in headless Chromium,
and a short bounded load test."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from transferlearn.serve import background_server, create_app  # noqa: E402

TINY_CLASSES = ["red", "blue", "苹果"]  # as in conftest.tiny_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 300_000
MAX_PIXELS = 1_000_000


def _jpeg(color=(200, 40, 40), size=(96, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    app = create_app(tiny_checkpoint, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    with background_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def test_health_and_classes(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["arch"] == "mobilenet_v2" and r.json()["num_classes"] == len(TINY_CLASSES)
    r = client.get("/classes")
    assert r.json() == {"classes": sorted(TINY_CLASSES)}


def test_predict_multipart_with_cam(client):
    r = client.post("/predict?cam=1&topk=5", files={"file": ("red.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] in TINY_CLASSES
    assert len(body["topk"]) == 3  # topk clamped to the number of classes
    assert body["topk"][0]["label"] == body["label"]
    assert abs(sum(t["confidence"] for t in body["topk"]) - 1) < 1e-4
    assert body["image"]["width"] == 96 and body["image"]["format"] == "JPEG"
    png = base64.b64decode(body["cam"]["png"].split(",", 1)[1])
    cam = Image.open(io.BytesIO(png))
    assert cam.format == "PNG" and cam.size == (64, 64)
    assert body["cam"]["class"] == body["label"]


def test_predict_raw_body_matches_library(client, tiny_checkpoint):
    from transferlearn import Classifier
    data = _jpeg((40, 60, 200))
    r = client.post("/predict", content=data, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and "cam" not in r.json()
    ref = Classifier.load(tiny_checkpoint).predict(Image.open(io.BytesIO(data)))[0]
    assert r.json()["label"] == ref.label and abs(r.json()["confidence"] - ref.confidence) < 1e-5


@pytest.mark.parametrize("payload, status, words", [
    (b"this is not an image", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, 415, "not an image"),
    (b"", 400, "empty"),
])
def test_bad_uploads_are_4xx_with_message(client, payload, status, words):
    r = client.post("/predict", files={"file": ("x.jpg", payload, "image/jpeg")})
    assert r.status_code == status and words in r.json()["error"]


def test_truncated_image_is_415(client):
    data = _jpeg(size=(200, 200))
    r = client.post("/predict", files={"file": ("t.jpg", data[: len(data) // 2], "image/jpeg")})
    assert r.status_code == 415 and "could not be decoded" in r.json()["error"]


def test_form_without_file_is_400(client):
    r = client.post("/predict", data={"other": "x"}, files={"notes": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 400 or r.status_code == 415  # a stray file part is not an image either
    r = client.post("/predict", data={"other": "x"})
    assert r.status_code == 400


def test_too_many_bytes_is_413(client):
    big = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")  # noise: ~480 KB > MAX_BYTES
    assert len(buf.getvalue()) > MAX_BYTES
    r = client.post("/predict", files={"file": ("big.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and "too large" in r.json()["error"]


def test_too_many_pixels_is_413(client):
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1000), (1, 2, 3)).save(buf, format="PNG")  # tiny file, 2 megapixels
    assert len(buf.getvalue()) < MAX_BYTES
    r = client.post("/predict", files={"file": ("wide.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and "megapixels" in r.json()["error"]


def test_uploads_never_touch_disk(client, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("upload written to a temporary file")
    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(1).integers(0, 255, (300, 250, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=95)
    r = client.post("/predict", files={"file": ("n.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200


def test_page_served(client):
    r = client.get("/")
    assert r.status_code == 200 and 'type="file"' in r.text and "predict?cam=1" in r.text


def test_load_test_script(server):
    """bench/loadtest.py against the loopback server: 4 clients x 5 requests, all answered."""
    img = Path(tempfile.mkdtemp()) / "x.jpg"
    img.write_bytes(_jpeg())
    out = img.with_suffix(".json")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "loadtest.py"), "--url", server, "--image", str(img),
                        "--clients", "4", "--requests", "5", "--json", str(out)],
                       capture_output=True, text=True, timeout=120)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["ok"] == 20 and res["errors"] == 0
    assert 0 < res["p50_ms"] <= res["p95_ms"] <= res["p99_ms"]


def test_load_test_refuses_other_hosts():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import loadtest
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit):
        loadtest.load_test("http://example.com:8000", b"", clients=1, requests=1)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="headless browser test needs chromium and chromedriver "
                                                             "(Debian: apt install chromium chromium-driver)")
def test_page_in_headless_chromium(server, tiny_data, tmp_path):
    """Pick an image in the real page, wait for the label, the bars and the CAM; save a screenshot."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,800",
              f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(server + "/")
        image = next((tiny_data / "val" / "red").iterdir())
        driver.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.body.dataset.done") == "1"
                                        or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == ""
        label = driver.find_element(By.ID, "label").text
        assert any(label.startswith(c) for c in TINY_CLASSES), label
        assert len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 3
        assert driver.execute_script("return document.getElementById('cam').naturalWidth") > 0
        shot = Path(os.environ.get("TRANSFERLEARN_SCREENSHOT_DIR", tmp_path)) / "serve_page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
