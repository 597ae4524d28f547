"""transferlearn: train, compare, evaluate and export image classifiers by transfer learning."""
__version__ = "0.1.0"

__all__ = ["Classifier", "__version__"]


def __getattr__(name):
    # Lazy, so that `import transferlearn` stays cheap (no torch import until a Classifier is needed).
    if name == "Classifier":
        from .predict import Classifier
        return Classifier
    raise AttributeError(f"module 'transferlearn' has no attribute {name!r}")
