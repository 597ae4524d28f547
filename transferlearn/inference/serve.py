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
        cur["headers"][header["field"].decode("latin-1").lower()] = header["value"].decode("utf-8", "replace")
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
        _, disp = parse_options_header(p["headers"].get("content-disposition", ""))
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
               cam_method: str = "gradcam", device: str = "cpu"):
    """The FastAPI app for `checkpoint` (a .pt file or run folder)."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse

    from .explain import Explainer
    from .predict import Classifier

    clf = Classifier.from_checkpoint(checkpoint, device=device)
    # CAM hooks live on a private copy of the model, behind a lock: plain predictions never touch them
    explainer = Explainer(copy.deepcopy(clf.model), clf.classes, clf.preprocess, cam_method, clf.meta.get("arch"))
    cam_lock = threading.Lock()
    info = {"arch": clf.meta.get("arch"), "mode": clf.meta.get("mode"), "num_classes": len(clf.classes),
            "checkpoint": str(checkpoint), "img_size": clf.preprocess.img_size, "cam_method": cam_method,
            "cam_layer": explainer.layer_name, "max_bytes": max_bytes, "max_pixels": max_pixels}

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
        return {"status": "ok", **{k: info[k] for k in ("arch", "mode", "num_classes", "img_size")}}

    @app.get("/classes")
    async def classes():
        return {"classes": clf.classes}

    def infer(img: Image.Image, topk: int, cam: bool) -> dict:
        t0 = time.perf_counter()
        pred = clf.predict_images([img], topk=topk)[0]
        out = {"label": pred.label, "confidence": pred.confidence,
               "topk": [{"label": lab, "confidence": p} for lab, p in pred.topk]}
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
    return (PAGE.replace("{{TITLE}}", html.escape(f"{info['arch']} classifier"))
                .replace("{{SUBTITLE}}", html.escape(f"{len(classes)} classes: " + ", ".join(classes[:12])
                                                     + (" ..." if len(classes) > 12 else "")))
                .replace("{{MAX_BYTES}}", json.dumps(info["max_bytes"]))
                .replace("{{MAX_MB}}", f"{info['max_bytes'] / 2**20:.0f}"))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}} - transferlearn</title>
<style>
 body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans",sans-serif;margin:0;background:#f5f6f8;color:#222}
 header{background:#263238;color:#fff;padding:14px 24px} header h1{margin:0;font-size:20px}
 header p{margin:4px 0 0;color:#b0bec5;font-size:13px}
 main{max-width:1100px;margin:20px auto;padding:0 16px}
 #drop{display:block;border:2px dashed #90a4ae;border-radius:10px;background:#fff;padding:26px;text-align:center;cursor:pointer}
 #drop.over{border-color:#1e88e5;background:#e3f2fd}
 #drop small{color:#666}
 .row{display:flex;gap:20px;margin-top:20px;flex-wrap:wrap}
 .card{background:#fff;border-radius:10px;padding:16px;box-shadow:0 1px 3px rgba(0,0,0,.12);flex:1;min-width:300px}
 .card h2{font-size:15px;margin:0 0 10px;color:#455a64}
 .card img{max-width:100%;max-height:340px;display:block;margin:auto;border-radius:6px}
 #label{font-size:26px;font-weight:600;margin:0 0 12px}
 .bar{display:flex;align-items:center;margin:6px 0;font-size:14px}
 .bar .name{width:34%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
 .bar .track{flex:1;background:#eceff1;border-radius:4px;height:18px;margin:0 8px}
 .bar .fill{background:#1e88e5;height:18px;border-radius:4px}
 .bar:first-child .fill{background:#fb8c00}
 .bar .pct{width:56px;text-align:right;font-variant-numeric:tabular-nums}
 #error{color:#c62828;font-weight:600} #status{color:#666;font-size:13px}
 .hidden{display:none}
</style></head>
<body>
<header><h1>{{TITLE}}</h1><p>{{SUBTITLE}}</p></header>
<main>
 <label id="drop" for="file">
  <b>Drop an image here</b> or click to pick one<br><small>JPEG, PNG, WebP, GIF, BMP, TIFF up to {{MAX_MB}} MB.
  The image is sent to this server only, kept in memory and never stored.</small>
  <input id="file" type="file" accept="image/*" class="hidden">
 </label>
 <p id="error" role="alert"></p><p id="status"></p>
 <div class="row hidden" id="results">
  <div class="card"><h2>Image</h2><img id="preview" alt="uploaded image"></div>
  <div class="card"><h2>Prediction</h2><p id="label"></p><div id="bars"></div></div>
  <div class="card"><h2 id="camtitle">Where the model looks (CAM)</h2><img id="cam" alt="CAM heat-map"></div>
 </div>
</main>
<script>
const MAX_BYTES = {{MAX_BYTES}};
const $ = id => document.getElementById(id);
function pct(p){ return (100*p).toFixed(1) + "%"; }
function showError(msg){ $("error").textContent = msg; $("status").textContent = ""; }
async function send(file){
  showError("");
  if (!file) return;
  if (file.size > MAX_BYTES){ showError(`"${file.name}" is ${(file.size/1048576).toFixed(1)} MB; the limit is ${(MAX_BYTES/1048576).toFixed(0)} MB.`); return; }
  $("preview").src = URL.createObjectURL(file);
  $("status").textContent = "classifying " + file.name + " ...";
  const fd = new FormData(); fd.append("file", file);
  let res, body;
  try { res = await fetch("predict?cam=1&topk=5", {method: "POST", body: fd}); body = await res.json(); }
  catch (e) { showError("request failed: " + e); return; }
  if (!res.ok){ showError(body.error || body.detail || ("error " + res.status)); $("results").classList.add("hidden"); return; }
  $("results").classList.remove("hidden");
  $("label").textContent = `${body.label}  ${pct(body.confidence)}`;
  $("bars").innerHTML = "";
  for (const t of body.topk){
    const row = document.createElement("div"); row.className = "bar";
    const name = document.createElement("span"); name.className = "name"; name.textContent = t.label; name.title = t.label;
    const track = document.createElement("span"); track.className = "track";
    const fill = document.createElement("span"); fill.className = "fill"; fill.style.display = "block";
    fill.style.width = pct(t.confidence); track.appendChild(fill);
    const p = document.createElement("span"); p.className = "pct"; p.textContent = pct(t.confidence);
    row.append(name, track, p); $("bars").appendChild(row);
  }
  if (body.cam){ $("cam").src = body.cam.png; $("camtitle").textContent = `${body.cam.method} for "${body.cam.class}"`; }
  $("status").textContent = `${file.name}: ${body.image.width}x${body.image.height}, predicted in ${body.ms.predict} ms` +
                            (body.ms.cam ? `, CAM ${body.ms.cam} ms` : "");
  document.body.dataset.done = "1";
}
$("file").addEventListener("change", e => send(e.target.files[0]));
const drop = $("drop");
["dragenter","dragover"].forEach(ev => drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave","drop"].forEach(ev => drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", e => send(e.dataTransfer.files[0]));
</script>
</body></html>
"""
