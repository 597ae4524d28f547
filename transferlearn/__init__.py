"""transferlearn: train, compare, evaluate and export image classifiers by transfer learning.

    import transferlearn
    summary = transferlearn.train(data="fruit30_split", mode="last-layer", arch="efficientnet_lite0")
    result = transferlearn.compare(data="fruit30_split", epochs=20)
    model, ckpt = transferlearn.load_model("runs/last-layer")
    transferlearn.calibrate("runs/last-layer")            # temperature + unknown threshold, into best.pt
    clf = transferlearn.Classifier.load("runs/last-layer", reject="auto", tta="flip")
    found = transferlearn.lr_find(transferlearn.TrainConfig(data="fruit30_split"))   # found.suggested
    search = transferlearn.tune(data="fruit30_split", mode="last-layer", trials=20)  # search["best_params"]

The layers, and where each thing lives: docs/architecture.md.
"""
__version__ = "0.1.0"

__all__ = ["Classifier", "train", "compare", "TrainConfig", "load_model", "create_model", "list_archs", "calibrate",
           "lr_find", "tune", "__version__"]

from . import moved as _moved  # noqa: E402  (old import paths such as transferlearn.predict keep working)

_moved.install()

# name -> the module it comes from, imported on first use so `import transferlearn` stays cheap (no torch)
_API = {"train": "transferlearn.train", "compare": "transferlearn.train.compare", "TrainConfig": "transferlearn.train",
        "load_model": "transferlearn.models", "Classifier": "transferlearn.inference.predict",
        "create_model": "transferlearn.models", "list_archs": "transferlearn.models",
        "calibrate": "transferlearn.evaluation.calibrate",
        "lr_find": "transferlearn.train.lr_find", "tune": "transferlearn.tuning"}


def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'transferlearn' has no attribute {name!r}")
