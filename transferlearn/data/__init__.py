"""Image files and folders -> samples -> tensors. Everything above reads data through here.

- files.py       which files are images, opening them safely, grey/RGB/16-bit to 8-bit channels
- folders.py     split discovery (which folder is train, val, test), the stratified, seeded split
- preprocess.py  the preprocessing a checkpoint stores (sizes, crop, mean/std), augmentation presets; no torch
- loading.py     transforms, class balance, the image dataset and its loader
- pixels.py      eval preprocessing in PIL + numpy (the one resize formula), for ONNX, CAM overlays, the cache
- cacheroot.py   the cache folder (no torch)
- tta.py         test-time views (mirror, five crops) of an image, in PIL + numpy, for eval and predict --tta
- cache.py       images decoded once, resized, kept in a memory-mapped file between epochs and runs

Importing this package costs nothing: a name's module is imported when the name is first used.
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "files": ("IMAGE_EXTENSIONS", "JUNK_NAMES", "is_hidden", "is_inside", "is_image_file", "list_class_dirs", "list_images",
              "to_rgb", "ImageTooLarge", "open_image", "load_rgb", "to_channels", "load_image"),
    "folders": ("VAL_NAMES", "DatasetError", "Splits", "scan", "stratified_split", "stratified_split3",
                "split_folders", "find_splits"),
    "preprocess": ("Preprocess", "SMALL_IMAGE", "is_small", "preprocess_config", "channels_of", "AUGMENT_PRESETS",
                   "default_augment"),
    "loading": ("eval_transform", "train_transform", "BALANCE_MODES", "class_weights", "balance_setup",
                "balance_report", "ImageDataset", "collate_skip_none", "resolve_workers", "make_loader"),
    "pixels": ("RESAMPLE", "resized_shape", "resize_shorter", "center_crop", "model_view", "crop_for_display",
               "numpy_preprocess", "thumbnail"),
    "cacheroot": ("default_cache_root",),
    "cache": ("CACHE_VERSION", "decode_resized", "DecodedImages", "CachedImageDataset"),
    "tta": ("TTA_MODES", "TTATransform", "check_tta", "tta_views"),
})
