"""What a run leaves on disk, and how it is found again.

- folders.py     runs/<name>/ numbering and claiming, the lock on a running run, CSV/JSON/YAML/TensorBoard logs
- checkpoint.py  the checkpoint file: atomic save, safe load (weights_only), version stamps

Importing this package costs nothing: a name's module is imported when the name is first used.
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "folders": ("RESULT_COLUMNS", "checkpoint_file", "run_folder", "increment_path", "write_json", "write_yaml", "write_csv", "read_csv", "read_yaml_mapping",
                "now_iso",
                "TensorBoardLogger", "claim_run_dir", "RunInUse", "RunLock"),
})
