"""A trained checkpoint put to use: predict, export, explain, serve.

- predict.py  Classifier: checkpoint or ONNX file -> predictions on images (PyTorch or onnxruntime)
- export.py   ONNX / TorchScript / MindSpore files with class names and preprocessing inside, checked for parity
- explain.py  CAM heat-maps (Grad-CAM and friends)
- serve.py    a small web app (FastAPI) around a checkpoint
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "predict": ("Classifier", "Prediction", "collect_paths"),
    "explain": ("Explainer",),
    "serve": ("create_app",),
})
