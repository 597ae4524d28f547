"""transferlearn: train, compare, evaluate and export image classifiers by transfer learning.

    import transferlearn
    summary = transferlearn.train(data="fruit30_split", mode="last-layer", arch="efficientnet_lite0")
    result = transferlearn.compare(data="fruit30_split", epochs=20)
    model, ckpt = transferlearn.load_model("runs/last-layer")
"""
__version__ = "0.1.0"

__all__ = ["Classifier", "train", "compare", "TrainConfig", "load_model", "create_model", "list_archs", "__version__"]


def __getattr__(name):  # lazy: `import transferlearn` stays cheap (no torch until needed)
    if name in ("train", "compare", "TrainConfig"):
        from . import trainer
        return getattr(trainer, name)
    if name == "load_model":
        from .checkpoint import load_model
        return load_model
    if name == "Classifier":
        from .predict import Classifier
        return Classifier
    if name in ("create_model", "list_archs"):
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module 'transferlearn' has no attribute {name!r}")
