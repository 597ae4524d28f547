"""Every error a user can act on derives from TransferlearnError; the CLI catches that one class.

The message names the file or option, the problem and the fix; `hint` is the one line printed under
it (where to look next). Each subclass also keeps the built-in base it had before (ValueError,
RuntimeError, ...), so code that caught those still catches them. Nothing is imported here.
"""
from __future__ import annotations


class TransferlearnError(Exception):
    """Base of transferlearn's own errors. `exit_code` is what the CLI returns for it."""
    hint = ""
    exit_code = 2


class DatasetError(TransferlearnError, ValueError):
    """The data folder is not usable as given; the message names the path and the fix."""
    hint = ("the layout read is DIR/train/<class>/<images> with DIR/val/<class>/ optional; "
            "`transferlearn data check DIR` lists problem files")


class ImageTooLarge(TransferlearnError, ValueError):
    """More pixels than any training image needs: a decompression bomb, or a scan to downsize first."""
    hint = "downsize the image, or move it away (`transferlearn data check DIR --fix` quarantines such files)"


class DatasetGetError(TransferlearnError, RuntimeError):
    """A dataset cannot be fetched or converted; the message says what to do."""
    hint = "`transferlearn data get --help` lists the datasets; --from FILE uses an archive you downloaded"


class ChecksumError(DatasetGetError):
    """A downloaded or --from file does not have the published checksum."""


class UnsafeArchiveError(DatasetGetError):
    """An archive member would land outside the target folder (absolute path, `..`, symlink)."""


class ModelError(TransferlearnError, ValueError):
    """An architecture name, channel count or input size that cannot work; the message says what can."""
    hint = "`transferlearn models` lists what --arch accepts"


class WeightsError(TransferlearnError, RuntimeError):
    """Pretrained weights cannot be found or do not fit; the message says what to do."""
    hint = "`transferlearn models` says which weights work offline; --weights PATH uses a file you have"


class CheckpointError(TransferlearnError, ValueError):
    """A file that is not a usable checkpoint; the message names the file, what it is and what to do."""
    hint = "pass a run folder (its best.pt is used) or a .pt file that `transferlearn train` wrote"


class MindSporeCheckpointError(CheckpointError):
    """A .ckpt cannot be read or written; the message names the file, the problem and the fix."""
    hint = "docs/mindspore.md says which MindSpore checkpoints are read"


class RunInUse(TransferlearnError, RuntimeError):
    """Another live process is writing this run folder."""
    hint = "wait for that run to end, or give this one another --name"


class ResumeError(TransferlearnError, ValueError):
    """The run cannot be continued as asked; the message says why and what to do instead."""
    hint = "`transferlearn train --resume RUN` continues a run with the options it was started with"


class DeviceError(TransferlearnError, RuntimeError):
    """The device asked for is not there (--device cuda without a CUDA GPU)."""
    hint = "--device auto uses a GPU when there is one, else the CPU"


class CacheFolderError(TransferlearnError, NotADirectoryError):
    """The cache folder (TRANSFERLEARN_CACHE, --cache-dir) names something that is not a folder."""
    hint = "unset TRANSFERLEARN_CACHE to use ~/.cache/transferlearn, or point it at a folder"


class OptionsFileError(TransferlearnError, ValueError):
    """A YAML file of options (`--cfg FILE`, `tune --space FILE`) that cannot be used; the message names the key."""
    hint = "the keys are train's options with _ for - (lr, weight_decay, label_smoothing ...): docs/tune.md"


class TuneError(TransferlearnError, RuntimeError):
    """A search that cannot start or continue as asked; the message says what to do."""
    hint = "`transferlearn tune --help`; docs/tune.md describes the search, its folder and --resume"


class MissingExtra(TransferlearnError, ImportError):
    """An optional package (a pip extra) that this feature needs is not installed."""
