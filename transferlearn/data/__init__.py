"""Image files and folders -> samples -> tensors. Everything above reads data through here.

- files.py    which files are images, opening them safely, grey/RGB/16-bit to 8-bit channels
- loading.py  split discovery (train/val/test), the stratified split, transforms, datasets, loaders
- cache.py    images decoded once, resized, kept in a memory-mapped file between epochs and runs

Importing this package costs nothing: a name's module is imported when the name is first used.
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "files": ("IMAGE_EXTENSIONS", "JUNK_NAMES", "is_hidden", "is_image_file", "list_class_dirs", "list_images",
              "to_rgb", "ImageTooLarge", "open_image", "load_rgb", "to_channels", "load_image"),
    "loading": ("VAL_NAMES", "DatasetError", "Splits", "stratified_split", "stratified_split3", "find_splits",
                "SMALL_IMAGE", "is_small", "preprocess_config", "channels_of", "eval_transform", "AUGMENT_PRESETS",
                "default_augment", "train_transform", "BALANCE_MODES", "class_weights", "balance_setup",
                "balance_report", "ImageDataset", "collate_skip_none", "resolve_workers", "make_loader"),
    "cache": ("CACHE_VERSION", "default_cache_root", "resized_shape", "decode_resized", "DecodedImages",
              "CachedImageDataset"),
})
