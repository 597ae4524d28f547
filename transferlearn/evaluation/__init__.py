"""How good is a trained model: metrics, predictions over a folder, 2-D feature maps, looks at batches.

- evaluate.py   `transferlearn eval`: a checkpoint on an image folder -> metrics, CSVs, plots, report
- metrics.py    accuracy, top-k, per-class precision/recall/F1, PR/ROC curves, confused pairs, ECE (numpy only)
- calibrate.py  `transferlearn calibrate`, `eval --calibrate`: temperature and unknown threshold fitted on val
- visualize.py  `transferlearn visualize`: a training batch as the model sees it, or predictions on images
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "evaluate": ("predict_folder", "Predictions", "embed_2d"),
    "metrics": ("compute_metrics", "curves", "confused_pairs", "mistakes", "calibration_bins"),
    "calibrate": ("fit_temperature", "fit_calibration"),  # not `calibrate`: the name of the module itself
    "visualize": ("visualize_batch", "visualize_predictions"),
})
