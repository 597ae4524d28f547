"""Friendly messages when an optional dependency (pip extra) is missing."""
from __future__ import annotations

import sys

# import name -> the pip extra that provides it
EXTRA_OF = {"onnx": "export", "onnxruntime": "export", "onnxscript": "export", "pytorch_grad_cam": "explain",
            "cv2": "explain", "fastapi": "serve", "uvicorn": "serve", "python_multipart": "serve",
            "multipart": "serve", "starlette": "serve", "cleanlab": "audit", "optuna": "tune"}


def missing_extra(e: ModuleNotFoundError) -> int:
    """Exit code 2 and the pip command, for a package that one of our extras provides; any other
    missing module is a broken install or a bug, and is raised."""
    top = (e.name or "").split(".")[0]
    if top not in EXTRA_OF:
        raise e
    print(f"error: this command needs the optional package {top!r}: "
          f"pip install 'transferlearn[{EXTRA_OF[top]}]'", file=sys.stderr)
    return 2
