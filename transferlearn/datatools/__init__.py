"""`transferlearn data ...` and `demo`: tools over the user's dataset folders, which they never modify.

- check.py       `data check`: corrupt, duplicate, leaking and junk files, reported per class
- quarantine.py  `data check --fix/--undo`: problem files moved (never deleted) aside, and back
- audit.py       `data audit`: likely label errors (K-fold probes + cleanlab), near-duplicates, outliers
- split.py       `data split`: a folder of class folders -> train/val/test, stratified and seeded
- sources.py     the datasets `data get` knows (URLs, checksums, classes); declarations only
- get.py         `data get`: download, verify and convert them into class folders
- stats.py       `data stats`: images per class, image sizes, grey or colour
- demo.py        `demo`: the three modes compared on a Fashion-MNIST subset, offline
"""
from ..lazy import face

__getattr__, __dir__, __all__ = face(__name__, {
    "check": ("format_report",),  # the function: datatools.check.check
    "quarantine": ("fix", "undo", "move_aside"),
    "audit": ("audit_dataset", "write_audit", "AuditResult"),
    "split": ("split_folder", "format_counts"),
    "sources": ("DATASETS", "list_datasets", "dataset_spec"),
    "stats": ("dataset_stats",),
    "demo": ("run_demo",),
})
