"""GPU throughput, end to end against the model alone (issue #14's GPU targets), in one short command:

    python bench/gpu.py                      # about 3 minutes on one H100/H200; --json FILE keeps the numbers
    PYTHONPATH=. python3 bench/gpu.py        # from the repo root, where the package is not installed

On a synthetic folder of JPEG photos (500x375, made once under --root) it measures, for ResNet50 and
EfficientNet-Lite0 all-layers at 224 px and at the default training crop (160 px), bf16, channels_last:
- model only: forward + backward + AdamW on a batch already on the GPU (img/s);
- end to end: `Trainer` epochs from the decode cache (batched augmentation on the GPU, pinned side-stream
  copies), epochs after the first (cuDNN's autotuning) (img/s), and their ratio (target >= 90 %);
and for last-layer mode the frozen-backbone feature extraction against the backbone's inference forward
(target >= 90 %). Weights are random (`--weights none`): throughput does not depend on them, and nothing
needs downloading. Needs CUDA; exits 2 without it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch


def _write(args):
    path, seed = args
    from PIL import Image
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:375, 0:500] / 500.0
    a = 127 + 100 * np.sin(rng.uniform(2, 9) * x[..., None] + rng.uniform(2, 9) * y[..., None] + rng.uniform(0, 6, 3))
    a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(path, quality=90)


def make_folder(root: Path, n_train: int, n_val: int, classes: int = 4) -> Path:
    """root/train/cK/*.jpg and root/val/cK/*.jpg (written once)."""
    jobs = []
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            d = root / split / f"c{i % classes}"
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{i}.jpg"
            if not p.exists():
                jobs.append((str(p), hash((split, i)) % 2**32))
    with ProcessPoolExecutor() as ex:
        list(ex.map(_write, jobs, chunksize=32))
    return root


def model_only(arch: str, size: int, batch: int, steps: int = 30, warmup: int = 10) -> float:
    """img/s of all-layers steps on GPU-resident tensors (bf16 autocast, channels_last, AdamW)."""
    from transferlearn.models import create_model
    dev = torch.device("cuda")
    m = create_model(arch, 4, weights="none").to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,), device=dev)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(m(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


@torch.no_grad()
def inference_only(arch: str, size: int, batch: int, steps: int = 30, warmup: int = 10) -> float:
    """img/s of the frozen backbone's forward (what last-layer feature extraction runs)."""
    from transferlearn.models import create_model
    dev = torch.device("cuda")
    m = create_model(arch, 4, weights="none").to(dev).to(memory_format=torch.channels_last).eval()
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            m.backbone(x)
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def end_to_end(data: Path, arch: str, train_size: int, batch: int, epochs: int, project: Path) -> dict:
    from transferlearn.train import TrainConfig, Trainer
    cfg = TrainConfig(data=str(data), mode="all-layers", arch=arch, weights="none", img_size=224,
                      train_size=train_size, epochs=epochs, batch_size=batch, device="cuda", amp="bf16",
                      eval_interval=epochs, quiet=True, project=str(project), name=f"{arch}_{train_size}",
                      exist_ok=True)
    t = Trainer(cfg, callbacks=[]).setup()
    t.fit()
    rows = t.state.history[1:]  # the first epoch pays cuDNN's autotuning
    out = {"img_s": sum(r["train_images"] for r in rows) / sum(r["train_seconds"] for r in rows),
           "first_epoch_img_s": t.state.history[0]["train_images"] / t.state.history[0]["train_seconds"]}
    t.close()
    return out


def feature_extraction(data: Path, arch: str, batch: int, views: int, project: Path) -> float:
    """img/s of last-layer's setup step: every train image `views` times and every val image once."""
    from transferlearn.train import TrainConfig, Trainer
    cfg = TrainConfig(data=str(data), mode="last-layer", arch=arch, weights="none", img_size=224, epochs=1,
                      batch_size=batch, device="cuda", amp="bf16", aug_views=views, quiet=True,
                      project=str(project), name=f"{arch}_features", exist_ok=True)
    t = Trainer(cfg, callbacks=[]).setup()  # the decode cache exists already: prep is the extraction
    n = views * len(t.splits.train) + len(t.splits.val)
    t.close()
    return n / t.prep_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/tmp/transferlearn_gpu_bench")
    ap.add_argument("--n-train", type=int, default=4096)
    ap.add_argument("--n-val", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--archs", nargs="+", default=["resnet50", "efficientnet_lite0"])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark measures the GPU path", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    root = Path(a.root)
    t0 = time.perf_counter()
    data = make_folder(root / "data", a.n_train, a.n_val)
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | {a.n_train} train / {a.n_val} val "
          f"JPEGs 500x375 ({time.perf_counter() - t0:.0f} s to write) | batch {a.batch_size} | bf16, channels_last",
          flush=True)
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch_size": a.batch_size, "rows": []}
    print("\n| arch | train px | model only img/s | end to end img/s | ratio | first epoch img/s |\n|---|---|---|---|---|---|")
    for arch in a.archs:
        for size in (224, 160):
            mo = model_only(arch, size, a.batch_size)
            e2e = end_to_end(data, arch, size, a.batch_size, a.epochs, root / "runs")
            res["rows"].append({"arch": arch, "train_size": size, "model_only_img_s": mo, **e2e})
            print(f"| {arch} | {size} | {mo:.0f} | {e2e['img_s']:.0f} | {e2e['img_s'] / mo:.0%} | "
                  f"{e2e['first_epoch_img_s']:.0f} |", flush=True)
    print("\n| arch | backbone inference img/s | feature extraction img/s | ratio |\n|---|---|---|---|")
    for arch in a.archs:
        inf = inference_only(arch, 224, a.batch_size)
        ext = feature_extraction(data, arch, a.batch_size, 2, root / "runs")
        res["rows"].append({"arch": arch, "inference_img_s": inf, "extraction_img_s": ext})
        print(f"| {arch} | {inf:.0f} | {ext:.0f} | {ext / inf:.0%} |", flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
