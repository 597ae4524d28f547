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
