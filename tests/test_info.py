"""`transferlearn info` and `--version`: what a user pastes into a bug report, read without torch where it can be."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "transferlearn")


def run(*args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_version_names_torch_and_torchvision():
    import torch
    import torchvision

    from transferlearn import __version__
    r = run("--version")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith(f"transferlearn {__version__} (")
    assert f"torch {torch.__version__.split('+')[0]}" in line and f"torchvision {torchvision.__version__.split('+')[0]}" in line


def test_info_prints_versions_cpu_cache_and_weights(tmp_path):
    cache = tmp_path / "缓存"
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "x.bin").write_bytes(b"\0" * 2500)
    r = run("info", env_extra={"TRANSFERLEARN_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for label in ("transferlearn", "torch", "torchvision", "onnxruntime", "CPU", "capability", "AMX", "threads",
                  "CUDA devices", "cache folder", "offline efficientnet_lite0", "offline mobilenet_v2"):
        assert any(line.startswith(label) for line in out.splitlines()), (label, out)
    assert f"{cache} (2.5 KB" in out
    import torch
    assert torch.backends.cpu.get_cpu_capability() in out


def test_info_json_matches_the_machine(tmp_path):
    import torch

    from transferlearn.machine import cpu_name
    r = run("info", "--json", env_extra={"TRANSFERLEARN_CACHE": str(tmp_path / "empty")})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["versions"]["torch"] == torch.__version__.split("+")[0]
    assert info["cpu"] == cpu_name() and info["capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch_threads"] >= 1 and isinstance(info["cuda_devices"], list)
    assert info["cache_folder"] == str(tmp_path / "empty") and info["cache_bytes"] == 0
    assert set(info["offline_weights"]) == {"efficientnet_lite0", "mobilenet_v2"}


def test_info_without_torch_imports_no_torch(tmp_path):
    code = ("import sys, json; from transferlearn.cli import main; rc = main(['info', '--no-torch', '--json']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "TRANSFERLEARN_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "capability" not in info and info["versions"]["transferlearn"]


def test_info_on_a_cache_that_is_a_file_says_so_in_one_line(tmp_path):
    bad = tmp_path / "cache.txt"
    bad.write_text("not a folder")
    r = run("info", env_extra={"TRANSFERLEARN_CACHE": str(bad)})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("error: ") and str(bad) in first and "not a folder" in first
