"""`transferlearn serve`: a small web app (FastAPI) around a trained checkpoint.

    GET  /          page: drop or pick an image; shows it, the top-5 bars and a CAM heat-map
    POST /predict   the image as multipart field "file" (or the raw bytes as the body);
                    ?cam=1 adds a heat-map PNG (base64), ?topk=N picks how many labels
    GET  /health    status, model, number of classes
    GET  /classes   class names, in the model's order

Uploads are read into memory only (never written to disk), limited in bytes (413) and in pixels
(413, checked from the header before decoding); anything PIL cannot decode is a 415 with a message.
"""

import base64
import contextlib
import copy
import io
import socket
import threading
import time

from PIL import Image, UnidentifiedImageError

from ..data import to_rgb
from ..reporting import template

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
MULTIPART_OVERHEAD = 16 * 1024  # boundaries and part headers on top of the file itself


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------- request body -> image bytes


def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part (field "file" preferred) of a multipart/form-data body, parsed in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart body without a boundary")
    parts: list[dict] = []
    cur: dict = {}
    header = {"field": b"", "value": b""}

    def on_part_begin():
        cur.clear()
        cur.update(headers={}, data=bytearray())

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        # raw bytes: browsers send a file name such as 苹果.jpg as UTF-8, which a str header would not survive
        cur["headers"][header["field"].decode("latin-1").lower()] = bytes(header["value"])
        header["field"], header["value"] = b"", b""

    def on_part_data(data, start, end):
        cur["data"] += data[start:end]

    def on_part_end():
        parts.append(dict(cur))

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as e:
        raise UploadError(400, f"malformed multipart body: {e}") from e
    files = []
    for p in parts:
        _, disp = parse_options_header(p["headers"].get("content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disp or name in ("file", "image"):
            files.append((name != "file", bytes(p["data"])))
    if not files:
        raise UploadError(400, "no file in the form: send the image as multipart field 'file'")
    return sorted(files, key=lambda f: f[0])[0][1]


async def read_image_bytes(request, max_bytes: int) -> bytes:
    """The uploaded image's bytes from a multipart form or a raw body, refusing more than max_bytes."""
    ctype = request.headers.get("content-type", "")
    is_form = ctype.startswith("multipart/form-data")
    if ctype.startswith("application/x-www-form-urlencoded"):
        raise UploadError(400, "no file in the form: send the image as multipart/form-data field 'file' "
                               "(or as the raw request body)")
    limit = max_bytes + (MULTIPART_OVERHEAD if is_form else 0)
    too_big = UploadError(413, f"upload too large: the limit is {max_bytes / 2**20:.1f} MB "
                               f"({max_bytes:,} bytes)")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_big
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_big
    data = _multipart_file(bytes(buf), ctype) if is_form else bytes(buf)
    if len(data) > max_bytes:
        raise too_big
    if not data:
        raise UploadError(400, "empty upload: send an image file (multipart field 'file')")
    return data


def decode_image(data: bytes, max_pixels: int) -> tuple[Image.Image, dict]:
    """Bytes -> RGB image, checking the pixel count from the header before decoding anything."""
    try:
        im = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UploadError(415, "not an image: the upload could not be read as JPEG, PNG, WebP, GIF, BMP or TIFF "
                               f"({type(e).__name__})") from e
    except Image.DecompressionBombError as e:
        raise UploadError(413, f"image too large: {e}") from e
    w, h = im.size
    if w * h > max_pixels:
        raise UploadError(413, f"image too large: {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                               f"{max_pixels / 1e6:.1f} megapixels")
    info = {"width": w, "height": h, "format": im.format, "mode": im.mode}
    try:
        im.seek(0)
        im.load()
        return to_rgb(im), info
    except Exception as e:  # truncated or corrupt data behind a valid header
        raise UploadError(415, f"the image could not be decoded (corrupt or truncated {im.format} file: "
                               f"{type(e).__name__}: {e})") from e


# ---------------------------------------------------------------- the app


def _png_base64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(checkpoint, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
               cam_method: str = "gradcam", device: str = "cpu", tta: str = "none", reject: str | None = None,
               reject_below: float | None = None):
    """The FastAPI app for `checkpoint` (a .pt file or run folder); tta, reject, reject_below as in
    `Classifier.configure` (an image below the reject rule's threshold is answered with label "unknown")."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse

    from .explain import Explainer
    from .predict import Classifier

    clf = Classifier.from_checkpoint(checkpoint, device=device).configure(tta, reject, reject_below)
    # CAM hooks live on a private copy of the model, behind a lock: plain predictions never touch them
    explainer = Explainer(copy.deepcopy(clf.model), clf.classes, clf.preprocess, cam_method, clf.meta.get("arch"))
    cam_lock = threading.Lock()
    info = {"arch": clf.meta.get("arch"), "mode": clf.meta.get("mode"), "num_classes": len(clf.classes),
            "checkpoint": str(checkpoint), "img_size": clf.preprocess.img_size, "cam_method": cam_method,
            "cam_layer": explainer.layer_name, "max_bytes": max_bytes, "max_pixels": max_pixels,
            "temperature": clf.temperature, "tta": tta, "reject": vars(clf.reject) if clf.reject else None}

    app = FastAPI(title="transferlearn", description=f"{info['arch']} classifier, {len(clf.classes)} classes",
                  version=_version())
    app.state.classifier, app.state.explainer, app.state.info = clf, explainer, info

    @app.exception_handler(UploadError)
    async def _upload_error(request, exc: UploadError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(render_page(info, clf.classes))

    @app.get("/health")
    async def health():
        return {"status": "ok", **{k: info[k] for k in ("arch", "mode", "num_classes", "img_size", "temperature",
                                                          "tta", "reject")}}

    @app.get("/classes")
    async def classes():
        return {"classes": clf.classes}

    def infer(img: Image.Image, topk: int, cam: bool) -> dict:
        t0 = time.perf_counter()
        pred = clf.predict_images([img], topk=topk)[0]
        out = pred.to_dict()
        del out["path"]
        t1 = time.perf_counter()
        out["ms"] = {"predict": round((t1 - t0) * 1000, 1)}
        if cam:
            with cam_lock:
                e = explainer.explain(img, target_class=pred.index)
            out["cam"] = {"method": e.method, "class": e.class_name, "layer": e.layer,
                          "png": _png_base64(e.overlay())}
            out["ms"]["cam"] = round((time.perf_counter() - t1) * 1000, 1)
        return out

    @app.post("/predict")
    async def predict(request: Request, cam: bool = False, topk: int = 5):
        data = await read_image_bytes(request, max_bytes)
        img, meta = await run_in_threadpool(decode_image, data, max_pixels)
        out = await run_in_threadpool(infer, img, max(1, min(topk, len(clf.classes))), cam)
        return {**out, "image": {**meta, "bytes": len(data)}}

    return app


def _version() -> str:
    from .. import __version__
    return __version__


def run(checkpoint, host: str = "127.0.0.1", port: int = 8000, **kwargs) -> None:
    import uvicorn
    app = create_app(checkpoint, **kwargs)
    print(f"serving {checkpoint} on http://{host}:{port}/  (API: POST /predict, GET /health, GET /classes)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
    """Run `app` with uvicorn in a thread on a real socket; yields its base URL. For tests and benchmarks."""
    import uvicorn
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------- the page


def render_page(info: dict, classes: list[str]) -> str:
    import html
    import json
    return (template("serve.html").replace("{{TITLE}}", html.escape(f"{info['arch']} classifier"))
                .replace("{{SUBTITLE}}", html.escape(f"{len(classes)} classes: " + ", ".join(classes[:12])
                                                     + (" ..." if len(classes) > 12 else "")))
                .replace("{{MAX_BYTES}}", json.dumps(info["max_bytes"]))
                .replace("{{MAX_MB}}", f"{info['max_bytes'] / 2**20:.0f}"))
