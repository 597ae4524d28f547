"""MindSpore checkpoints without MindSpore: read/write .ckpt, map model-zoo and mindcv ResNet names to
torchvision's, and rebuild the networks with MindSpore's padding and BatchNorm eps. See docs/mindspore.md."""
from .ckptio import MindSporeCheckpointError, read_ckpt, write_ckpt
from .convert import MindSporeWeights, convert, create_from_mindspore, load_resnet
from .resnet import VARIANTS, apply_variant, build as build_resnet

__all__ = ["MindSporeCheckpointError", "read_ckpt", "write_ckpt", "MindSporeWeights", "convert",
           "create_from_mindspore", "load_resnet", "VARIANTS", "apply_variant", "build_resnet"]


def __getattr__(name):
    if name == "export_mindspore":
        raise ImportError("export_mindspore moved to transferlearn.inference.export (it verifies an export, "
                             "which is inference's work): from transferlearn.inference.export import export_mindspore")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
