"""Inference: `Classifier.load(checkpoint).predict(images)` -> top-k labels with confidences.

Two backends share one interface:
  * "torch": the checkpoint's TransferNet, preprocessed with `data.eval_transform`, exactly as in
    validation during training;
  * "onnxruntime": an ONNX file written by `transferlearn export`; classes and preprocessing come
    from its metadata and preprocessing is done in numpy/PIL (`numpy_preprocess`), no torch model code.

Inputs may be file paths, folders (searched recursively), glob patterns or PIL images. Files are
decoded and preprocessed in DataLoader worker processes and run through the model in batches.
Unreadable files are reported and skipped, never fatal.

Probabilities are softmax(logits / T), T the checkpoint's calibrated temperature (inside an ONNX graph);
`configure` adds test-time views and the "unknown" answer (docs/trust.md, `models.trust`).
"""
from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from collections.abc import Mapping
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..data import Preprocess, TTATransform, check_tta, is_image_file, list_images, load_rgb, numpy_preprocess, to_rgb
from ..models import UNKNOWN, merge_views, reject_rule, score, temperature_of
from ..runs import checkpoint_file
from .outputs import Prediction, Skipped

BACKENDS = ("torch", "onnxruntime")


def collect_paths(inputs: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Expand files, folders (recursive) and glob patterns into image paths, in the given order.

    Returns (paths, problems): problems are human-readable notes on inputs that matched nothing.
    Files named explicitly are kept even with an unusual extension (they may still decode).
    """
    paths: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            paths.append(p)

    for item in inputs:
        s = os.fspath(item)
        if os.path.isdir(s):
            found = list_images(s)
            if not found:
                problems.append(f"{s}: folder has no image files")
            for p in found:
                add(p)
        elif os.path.isfile(s):
            add(s)
        elif glob.has_magic(s):
            matched = sorted(glob.glob(s, recursive=True))
            found = []
            for m in matched:
                found.extend(list_images(m) if os.path.isdir(m) else ([m] if is_image_file(m) else []))
            if not found:
                problems.append(f"{s}: pattern matched no image files")
            for p in found:
                add(p)
        else:
            problems.append(f"{s}: no such file or folder")
    return paths, problems


# ---------------------------------------------------------------- backends


class TorchBackend:
    name = "torch"

    def __init__(self, model, device="cpu"):
        import torch
        self.torch = torch
        from ..models import infer, model_to, pick_device
        self.device = pick_device(device)
        self.model = model_to(model, self.device)
        self.infer = infer

    def __call__(self, batch) -> np.ndarray:
        if isinstance(batch, np.ndarray):
            batch = self.torch.from_numpy(batch)
        return self.infer(self.model, batch, self.device).float().cpu().numpy()


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None

    def __call__(self, batch) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        if self.fixed_batch and len(batch) != self.fixed_batch:  # exported without --dynamic-batch
            outs = [self.session.run(None, {self.input_name: batch[i:i + self.fixed_batch]})[0]
                    for i in range(0, len(batch), self.fixed_batch)]
            return np.concatenate(outs)
        return self.session.run(None, {self.input_name: batch})[0]


def read_onnx_metadata(path: str | os.PathLike, session=None) -> dict:
    """classes, preprocess, arch ... from an exported ONNX file's metadata_props (no torch needed)."""
    if session is None:
        import onnxruntime as ort
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    if "transferlearn" not in props:
        raise ValueError(f"{path} has no transferlearn metadata; export it with `transferlearn export`")
    return json.loads(props["transferlearn"])


# ---------------------------------------------------------------- loading files in workers


class _FileDataset:
    """Index -> (array, index) or (None, index, error message); picklable for worker processes."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return self.transform(load_rgb(self.paths[i])), i, None
        except Exception as e:  # corrupt, truncated, not an image: reported by the caller
            return None, i, f"{type(e).__name__}: {e}"


def _collate(items):
    ok = [t for t in items if t[0] is not None]
    bad = [(i, err) for x, i, err in items if x is None]
    if not ok:
        return None, [], bad
    first = ok[0][0]
    if isinstance(first, np.ndarray):
        batch = np.stack([x for x, _, _ in ok])
    else:
        import torch
        batch = torch.stack([x for x, _, _ in ok])
    return batch, [i for _, i, _ in ok], bad


# ---------------------------------------------------------------- the classifier


class Classifier:
    """A trained classifier ready for inference.

    >>> clf = Classifier.load("runs/last-layer")          # or a .pt file, or an exported .onnx file
    >>> for p in clf.predict(["a.jpg", "photos/", "more/*.png"]):
    ...     print(p.path, p.label, p.confidence, p.topk)
    """

    def __init__(self, backend, classes: list[str], preprocess: Preprocess | Mapping, transform: Callable | None = None,
                 meta: dict | None = None, source: str = "", calibration: dict | None = None,
                 temperature_in_model: bool = False):
        self.backend = backend
        self.classes = list(classes)
        self.preprocess = Preprocess.of(preprocess)
        self.transform = self.plain_transform = transform or _NumpyTransform(self.preprocess)
        self.meta = meta or {}
        self.source = source
        self.skipped: list[Skipped] = []  # unreadable files from the last predict() call
        self.calibration = dict(calibration or {})
        self.temperature = 1.0 if temperature_in_model else temperature_of(calibration)  # what we divide by
        self.tta, self.reject = "none", None

    def configure(self, tta: str = "none", reject: str | None = None, reject_below: float | None = None
                  ) -> "Classifier":
        """tta: none | flip | 5crop (probabilities averaged over the views); reject="auto": "unknown" below
        the threshold `transferlearn calibrate` stored; reject_below=P: "unknown" when the (calibrated) max
        probability is below P. Returns self."""
        self.tta = check_tta(tta)
        self.transform = self.plain_transform if tta == "none" else TTATransform(self.preprocess, tta)
        self.reject = reject_rule(self.calibration, reject, reject_below, source=self.source or "the model")
        return self

    # ------------------------------------------------ construction

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str = "auto", device: str = "cpu",
             threads: int | None = None, tta: str = "none", reject: str | None = None,
             reject_below: float | None = None) -> "Classifier":
        """A checkpoint (.pt / run folder) for backend "torch", or an .onnx file for "onnxruntime".
        tta, reject, reject_below: see `configure`.

        backend="onnxruntime" with a checkpoint or run folder uses the exported `best.onnx` beside it.
        threads: compute threads (onnxruntime: the InferenceSession's intra-op threads; torch: the process-wide
        `torch.set_num_threads`). Default: the library's own default (all cores).
        """
        if backend not in ("auto",) + BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        p = Path(path)
        is_onnx = p.suffix.lower() == ".onnx"
        if backend == "auto":
            backend = "onnxruntime" if is_onnx else "torch"
        if backend == "onnxruntime":
            if not is_onnx:
                p = find_onnx_for(p)
            return cls.from_onnx(p, threads=threads).configure(tta, reject, reject_below)
        if threads:
            import torch
            torch.set_num_threads(int(threads))
        if is_onnx:
            raise ValueError(f"{p} is an ONNX file: use backend 'onnxruntime' (predict --backend onnxruntime)")
        return cls.from_checkpoint(p, device=device).configure(tta, reject, reject_below)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu") -> "Classifier":
        from ..models import load_model
        from ..data import eval_transform
        model, ckpt = load_model(path, device=device)
        meta = {k: ckpt.get(k) for k in ("arch", "mode", "metrics", "versions", "calibration")}
        clf = cls(TorchBackend(model, device), ckpt["classes"], ckpt["preprocess"],
                  transform=eval_transform(ckpt["preprocess"]), meta=meta, source=str(path),
                  calibration=ckpt.get("calibration"))
        clf.model = model
        return clf

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, threads: int | None = None) -> "Classifier":
        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX file {path} not found")
        backend = OnnxBackend(path, threads)
        meta = read_onnx_metadata(path, backend.session)
        cal = meta.get("calibration") or {}
        return cls(backend, meta["classes"], meta["preprocess"], meta=meta, source=str(path), calibration=cal,
                   temperature_in_model=bool(cal.get("temperature_in_graph")))

    # ------------------------------------------------ inference

    def predict_arrays(self, batch) -> np.ndarray:
        """Class probabilities (N, num_classes) for a preprocessed batch, (N, C, H, W) or (N, V, C, H, W)."""
        return self.scored(batch)[0]

    def scored(self, batch) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, the reject rule's score per image or None) for a preprocessed batch."""
        if batch.ndim == 5:
            n, v = batch.shape[:2]
            logits = np.asarray(self.backend(batch.reshape(n * v, *batch.shape[2:]))).reshape(n, v, -1)
        else:
            logits = self.backend(batch)
        probs, z = merge_views(np.asarray(logits, dtype=np.float64), self.temperature)
        return probs, (score(self.reject.score, probs, z) if self.reject else None)

    def _results(self, probs: np.ndarray, topk: int, paths: Sequence[str | None], scores=None) -> list[Prediction]:
        k = max(1, min(topk, len(self.classes)))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i, (row, idx, path) in enumerate(zip(probs, order, paths)):
            top = [(self.classes[j], float(row[j])) for j in idx]
            s = None if scores is None else float(scores[i])
            unknown = s is not None and s < self.reject.threshold
            out.append(Prediction(label=UNKNOWN if unknown else top[0][0], confidence=top[0][1], index=int(idx[0]),
                                  topk=top, path=path, probs=row.astype(np.float32), unknown=unknown, score=s))
        return out

    def predict_images(self, images: Sequence[Image.Image], topk: int = 5, batch_size: int = 32
                       ) -> list[Prediction]:
        """PIL images in memory (any mode) -> predictions, in order, `batch_size` at a time."""
        out: list[Prediction] = []
        for i in range(0, len(images), max(1, batch_size)):
            xs = [self.transform(to_rgb(im)) for im in images[i:i + batch_size]]
            batch = np.stack(xs) if isinstance(xs[0], np.ndarray) else _stack_tensors(xs)
            probs, scores = self.scored(batch)
            out.extend(self._results(probs, topk, [None] * len(xs), scores))
        return out

    def iter_predict(self, paths: Sequence[str], topk: int = 5, batch_size: int = 32, workers="auto",
                     progress: bool = False, on_skip: Callable[[Skipped], None] | None = None
                     ) -> Iterator[Prediction]:
        """Stream predictions for image files, batch by batch (order kept, unreadable files skipped)."""
        from torch.utils.data import DataLoader

        from ..data import resolve_workers
        n_batches = -(-len(paths) // max(batch_size, 1))
        n_workers = 0 if n_batches <= 1 else min(resolve_workers(workers), n_batches)
        loader = DataLoader(_FileDataset(paths, self.transform), batch_size=batch_size, shuffle=False,
                            num_workers=n_workers, collate_fn=_collate)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(paths), unit="img", desc="predict", file=sys.stderr, dynamic_ncols=True)
        try:
            for batch, idxs, bad in loader:
                for i, err in bad:
                    s = Skipped(paths[i], err)
                    self.skipped.append(s)
                    if on_skip:
                        on_skip(s)
                if batch is not None:
                    probs, scores = self.scored(batch)
                    yield from self._results(probs, topk, [paths[i] for i in idxs], scores)
                if bar is not None:
                    bar.update(len(idxs) + len(bad))
        finally:
            if bar is not None:
                bar.close()

    def predict(self, images, topk: int = 5, batch_size: int = 32, workers="auto", progress: bool = False,
                on_skip: Callable[[Skipped], None] | None = None) -> list[Prediction]:
        """Predict one or many images: paths, folders, glob patterns, PIL images, or a mix.

        Returns one `Prediction` per readable image, in input order (a folder or pattern expands to its
        files in sorted order). Unreadable files are skipped and listed in `self.skipped` (and passed to
        `on_skip` as they are found).
        """
        self.skipped = []
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        images = list(images)
        if all(isinstance(im, Image.Image) for im in images):
            return self.predict_images(images, topk, batch_size)
        out: list[Prediction] = []
        pending: list[str] = []

        def flush():
            if pending:
                paths, problems = collect_paths(pending)
                for msg in problems:
                    s = Skipped(msg.split(":")[0], msg)
                    self.skipped.append(s)
                    if on_skip:
                        on_skip(s)
                out.extend(self.iter_predict(paths, topk, batch_size, workers, progress, on_skip))
                pending.clear()

        for im in images:
            if isinstance(im, Image.Image):
                flush()
                out.extend(self.predict_images([im], topk))
            else:
                pending.append(os.fspath(im))
        flush()
        return out


class _NumpyTransform:
    """Picklable `numpy_preprocess` bound to a preprocessing config (for DataLoader workers)."""

    def __init__(self, pre: Preprocess):
        self.pre = pre

    def __call__(self, img: Image.Image) -> np.ndarray:
        return numpy_preprocess(img, self.pre)


def _stack_tensors(xs):
    import torch
    return torch.stack(xs)


def find_onnx_for(path: str | os.PathLike) -> Path:
    """The ONNX file `transferlearn export` writes by default for a checkpoint or run folder."""
    candidate = checkpoint_file(path, "best.onnx").with_suffix(".onnx")
    if not candidate.is_file():
        raise FileNotFoundError(f"no ONNX export found at {candidate}; run "
                                f"`transferlearn export {path} --format onnx` first, or pass the .onnx file")
    return candidate


__all__ = ["Classifier", "Prediction", "Skipped", "collect_paths", "read_onnx_metadata", "find_onnx_for"]

# names that moved out of this module, and where to
MOVED_OUT = {"write_csv": "transferlearn.inference.outputs.save_predictions_csv",
             "write_json": "transferlearn.inference.outputs.save_predictions_json",
             "format_table": "transferlearn.inference.outputs.format_table",
             "plot_prediction": "transferlearn.inference.outputs.plot_prediction",
             "plot_name": "transferlearn.inference.outputs.plot_name",
             "summarize": "transferlearn.inference.outputs.summarize",
             "throughput": "transferlearn.inference.outputs.throughput",
             "numpy_preprocess": "transferlearn.data.pixels.numpy_preprocess",
             "crop_for_display": "transferlearn.data.pixels.crop_for_display"}


def __getattr__(name):
    if name in MOVED_OUT:
        raise ImportError(f"{name} moved: use {MOVED_OUT[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
