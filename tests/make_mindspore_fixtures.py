"""Make the MindSpore fixtures in tests/data/mindspore/ with real MindSpore (not run by CI).

CI does not install MindSpore (an ~800 MB wheel), so this script is run by hand where it is installed:

    python3 -m venv /tmp/msvenv && /tmp/msvenv/bin/pip install mindspore numpy
    /tmp/msvenv/bin/python tests/make_mindspore_fixtures.py             # writes tests/data/mindspore/
    python tests/make_mindspore_fixtures.py --prepare DIR                 # transferlearn writes .ckpt files
    /tmp/msvenv/bin/python tests/make_mindspore_fixtures.py --verify DIR  # MindSpore loads them

It builds small (reduced-width) ResNets in MindSpore the way the model zoo and mindcv build theirs, fills
every parameter with random values (BatchNorm statistics included, so a mapping mistake shows), saves
their .ckpt (the model-zoo one through a Momentum training step, so it also holds moments.*,
learning_rate and global_step, plus epoch_num/step_num scalars as ModelCheckpoint adds), and stores
inputs and MindSpore's own features and logits in an .npz. It also saves small files for the reader's
edge cases: every dtype, a CRC trailer, an encrypted file, and (crafted with MindSpore's own
checkpoint_pb2) old dtype spellings and a tensor split over several Values.

--verify DIR: for each DIR/<name>.ckpt written by transferlearn with DIR/<name>.json ({"kind": ..., "args": ...}) and
DIR/<name>.npz (input x, PyTorch logits), MindSpore's load_checkpoint + load_param_into_net must load
every parameter, and MindSpore's forward must match the PyTorch logits.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "data" / "mindspore"


def _nets():
    """MindSpore network definitions, written from the model zoo's and mindcv's resnet.py APIs."""
    import mindspore.nn as nn
    import mindspore.ops as ops

    def conv(cin, cout, k, s, same):  # model zoo: pad_mode='same' (ResidualBlock) or 'pad' (res_base)
        if same:
            return nn.Conv2d(cin, cout, k, stride=s, pad_mode="same", padding=0)
        return nn.Conv2d(cin, cout, k, stride=s, pad_mode="pad", padding=k // 2)

    class ZooBottleneck(nn.Cell):  # model zoo ResidualBlock (ResNet50/101/152): 'same' everywhere, eps 1e-4
        def __init__(self, cin, cout, stride):
            super().__init__()
            mid = cout // 4
            self.conv1, self.bn1 = conv(cin, mid, 1, 1, True), nn.BatchNorm2d(mid, eps=1e-4, momentum=0.9)
            self.conv2, self.bn2 = conv(mid, mid, 3, stride, True), nn.BatchNorm2d(mid, eps=1e-4, momentum=0.9)
            self.conv3, self.bn3 = conv(mid, cout, 1, 1, True), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)
            self.relu = nn.ReLU()
            self.down_sample = stride != 1 or cin != cout
            self.down_sample_layer = None
            if self.down_sample:
                self.down_sample_layer = nn.SequentialCell([conv(cin, cout, 1, stride, True),
                                                            nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)])

        def construct(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            identity = self.down_sample_layer(x) if self.down_sample else x
            return self.relu(out + identity)

    class ZooBasic(nn.Cell):  # model zoo ResidualBlockBase (ResNet18/34, res_base=True)
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1d = conv(cin, cout, 3, stride, False), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)
            self.conv2, self.bn2d = conv(cout, cout, 3, 1, False), nn.BatchNorm2d(cout, eps=1e-4, momentum=0.9)
            self.relu = nn.ReLU()
            self.down_sample = stride != 1 or cin != cout
            self.down_sample_layer = None
            if self.down_sample:
                self.down_sample_layer = nn.SequentialCell([conv(cin, cout, 1, stride, False),
                                                            nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)])

        def construct(self, x):
            out = self.relu(self.bn1d(self.conv1(x)))
            out = self.bn2d(self.conv2(out))
            identity = self.down_sample_layer(x) if self.down_sample else x
            return self.relu(out + identity)

    class ZooResNet(nn.Cell):
        def __init__(self, block, layers, stem, outs, num_classes, res_base):
            super().__init__()
            self.res_base = res_base
            self.conv1 = conv(3, stem, 7, 2, not res_base)
            self.bn1 = nn.BatchNorm2d(stem, eps=1e-5 if res_base else 1e-4, momentum=0.1 if res_base else 0.9)
            self.relu = ops.ReLU()
            if res_base:
                self.pad = nn.Pad(paddings=((0, 0), (0, 0), (1, 1), (1, 1)))
                self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="valid")
            else:
                self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
            cin, stages = stem, []
            for i, (n, cout) in enumerate(zip(layers, outs)):
                blocks = [block(cin, cout, 1 if i == 0 else 2)] + [block(cout, cout, 1) for _ in range(n - 1)]
                stages.append(nn.SequentialCell(blocks))
                cin = cout
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.mean = ops.ReduceMean(keep_dims=True)
            self.flatten = nn.Flatten()
            self.end_point = nn.Dense(outs[-1], num_classes)

        def features(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            if self.res_base:
                x = self.pad(x)
            x = self.layer4(self.layer3(self.layer2(self.layer1(self.maxpool(x)))))
            return self.flatten(self.mean(x, (2, 3)))

        def construct(self, x):
            return self.end_point(self.features(x))

    class CvBottleneck(nn.Cell):  # mindcv Bottleneck: stride on the 3x3, BatchNorm defaults (eps 1e-5)
        expansion = 4

        def __init__(self, cin, ch, stride=1, down_sample=None):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, ch, 1, stride=1), nn.BatchNorm2d(ch)
            self.conv2 = nn.Conv2d(ch, ch, 3, stride=stride, padding=1, pad_mode="pad")
            self.bn2 = nn.BatchNorm2d(ch)
            self.conv3, self.bn3 = nn.Conv2d(ch, ch * 4, 1, stride=1), nn.BatchNorm2d(ch * 4)
            self.relu = nn.ReLU()
            self.down_sample = down_sample

        def construct(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            identity = self.down_sample(x) if self.down_sample is not None else x
            return self.relu(out + identity)

    class CvBasic(nn.Cell):  # mindcv BasicBlock
        expansion = 1

        def __init__(self, cin, ch, stride=1, down_sample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, ch, 3, stride=stride, padding=1, pad_mode="pad")
            self.bn1 = nn.BatchNorm2d(ch)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(ch, ch, 3, stride=1, padding=1, pad_mode="pad")
            self.bn2 = nn.BatchNorm2d(ch)
            self.down_sample = down_sample

        def construct(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = self.down_sample(x) if self.down_sample is not None else x
            return self.relu(out + identity)

    class CvResNet(nn.Cell):  # mindcv ResNet: 'pad' stem conv, 'same' max-pool, classifier
        def __init__(self, block, layers, stem, widths, num_classes):
            super().__init__()
            self.conv1 = nn.Conv2d(3, stem, 7, stride=2, pad_mode="pad", padding=3)
            self.bn1 = nn.BatchNorm2d(stem)
            self.relu = nn.ReLU()
            self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
            cin, stages = stem, []
            for i, (n, ch) in enumerate(zip(layers, widths)):
                stride = 1 if i == 0 else 2
                ds = None
                if stride != 1 or cin != ch * block.expansion:
                    ds = nn.SequentialCell([nn.Conv2d(cin, ch * block.expansion, 1, stride=stride),
                                            nn.BatchNorm2d(ch * block.expansion)])
                blocks = [block(cin, ch, stride, ds)]
                cin = ch * block.expansion
                blocks += [block(cin, ch) for _ in range(n - 1)]
                stages.append(nn.SequentialCell(blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.mean = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(cin, num_classes)

        def features(self, x):
            x = self.max_pool(self.relu(self.bn1(self.conv1(x))))
            return self.mean(self.layer4(self.layer3(self.layer2(self.layer1(x)))), (2, 3))

        def construct(self, x):
            return self.classifier(self.features(x))

    kinds = {"zoo_bottleneck": lambda l, s, w, n: ZooResNet(ZooBottleneck, l, s, w, n, False),
             "zoo_basic": lambda l, s, w, n: ZooResNet(ZooBasic, l, s, w, n, True),
             "mindcv_bottleneck": lambda l, s, w, n: CvResNet(CvBottleneck, l, s, w, n),
             "mindcv_basic": lambda l, s, w, n: CvResNet(CvBasic, l, s, w, n)}
    return lambda kind, *args: kinds[kind](*args)


# reduced widths: stem 8 (ResNet50: 64), blocks [2, 1, 1, 1]; model zoo: stage outputs, mindcv: widths
FIXTURES = {"zoo_bottleneck": ([2, 1, 1, 1], 8, [16, 32, 64, 128], 10),
            "zoo_basic": ([2, 1, 1, 1], 8, [8, 16, 24, 32], 10),
            "mindcv_bottleneck": ([2, 1, 1, 1], 8, [4, 8, 16, 32], 7),
            "mindcv_basic": ([2, 1, 1, 1], 8, [8, 16, 24, 32], 7)}


def _randomise(net, rng):
    """Random values everywhere, BatchNorm statistics and affine included, so every mapping matters."""
    import mindspore as ms
    for p in net.get_parameters():
        shape, name = p.shape, p.name
        if name.endswith("moving_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("beta", "moving_mean", "bias")):
            v = rng.normal(0, 0.2, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            v = rng.normal(0, (2.0 / fan_in) ** 0.5, shape)
        p.set_data(ms.Tensor(v.astype(np.float32)))


def make_networks(out: Path) -> None:
    import mindspore as ms
    import mindspore.nn as nn

    rng = np.random.default_rng(0)
    inputs = {"x_even": rng.normal(0, 1, (2, 3, 48, 48)).astype(np.float32),   # 'same' pads 2/3, 0/1
              "x_odd": rng.normal(0, 1, (1, 3, 45, 45)).astype(np.float32)}    # 'same' pads 3/3, 1/1
    np.savez_compressed(out / "inputs.npz", **inputs)
    make = _nets()
    for name, args in FIXTURES.items():
        net = make(name, *args)
        _randomise(net, rng)
        path = out / f"{name}.ckpt"
        if name == "zoo_bottleneck":  # as the model zoo's ModelCheckpoint saves it: through the optimiser
            opt = nn.Momentum(net.trainable_params(), learning_rate=0.001, momentum=0.9)
            loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
            train = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
            train.set_train(True)
            train(ms.Tensor(inputs["x_even"]), ms.Tensor(np.array([1, 3], np.int32)))
            ms.save_checkpoint(train, str(path), append_dict={"epoch_num": 3, "step_num": 12})
        else:
            ms.save_checkpoint(net, str(path))
        net.set_train(False)
        arrays = {}
        for k, x in inputs.items():
            arrays[f"features_{k[2:]}"] = net.features(ms.Tensor(x)).asnumpy()
            arrays[f"logits_{k[2:]}"] = net(ms.Tensor(x)).asnumpy()
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KB, {len(ms.load_checkpoint(str(path)))} entries")


def make_edge_cases(out: Path) -> None:
    import mindspore as ms
    from mindspore.common import dtype as mstype
    from mindspore.train.checkpoint_pb2 import Checkpoint

    rng = np.random.default_rng(1)
    f = rng.normal(0, 1, (3, 4))
    tensors = {
        "f16": ms.Tensor(f.astype(np.float16)), "f32": ms.Tensor(f.astype(np.float32)),
        "f64": ms.Tensor(f.astype(np.float64)), "bf16": ms.Tensor(f.astype(np.float32), dtype=mstype.bfloat16),
        "bool": ms.Tensor(f > 0),
    }
    for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        tensors[t] = ms.Tensor(rng.integers(0, 100, (2, 5)).astype(t))
    tensors["scalar_f32"] = ms.Tensor(np.float32(2.5))
    tensors["scalar_i64"] = ms.Tensor(np.int64(-7))
    save = [{"name": k, "data": v} for k, v in tensors.items()]
    ms.save_checkpoint(save, str(out / "dtypes.ckpt"), append_dict={"note": "hello 你好", "epoch_num": 5})
    expect = {k: (v.float().asnumpy() if k == "bf16" else v.asnumpy()) for k, v in tensors.items()}
    expect["epoch_num"] = np.int64(5)
    np.savez(out / "dtypes.npz", **expect)
    loaded = ms.load_checkpoint(str(out / "dtypes.ckpt"))
    print("dtypes.ckpt:", {k: (str(v.dtype) if hasattr(v, "dtype") else type(v).__name__) for k, v in loaded.items()})

    small = [{"name": "w", "data": ms.Tensor(f.astype(np.float32))}]
    ms.save_checkpoint(small, str(out / "crc.ckpt"), crc_check=True)
    ms.load_checkpoint(str(out / "crc.ckpt"), crc_check=True)
    ms.save_checkpoint(small, str(out / "encrypted.ckpt"), enc_key=b"0123456789abcdef", enc_mode="AES-GCM")

    # crafted with MindSpore's own schema: what MindSpore 1.x wrote ("Uint8"), a tensor in 3 Values,
    # and a 4-bit quantised tensor (Int4) that we refuse with a clear message.
    ck = Checkpoint()
    data = rng.integers(0, 255, (6, 4)).astype(np.uint8)
    v = ck.value.add()
    v.tag, v.tensor.tensor_type, v.tensor.tensor_content = "old_u8", "Uint8", data.tobytes()
    v.tensor.dims.extend(data.shape)
    big = rng.normal(0, 1, (5, 3)).astype(np.float32)
    for chunk in np.array_split(big, 3):
        v = ck.value.add()
        v.tag, v.tensor.tensor_type, v.tensor.tensor_content = "split", "Float32", chunk.tobytes()
        v.tensor.dims.extend(big.shape)
    (out / "crafted_old_split.ckpt").write_bytes(ck.SerializeToString())
    np.savez(out / "crafted_old_split.npz", old_u8=data, split=big)
    ck = Checkpoint()
    v = ck.value.add()
    v.tag, v.tensor.tensor_type, v.tensor.tensor_content = "q", "Int4", bytes(8)
    v.tensor.dims.extend([4, 4])
    (out / "crafted_int4.ckpt").write_bytes(ck.SerializeToString())


def verify(d: Path) -> int:
    """MindSpore loads each .ckpt transferlearn wrote into the matching network and computes its logits."""
    import mindspore as ms
    make, bad = _nets(), 0
    for meta in sorted(d.glob("*.json")):
        info = json.loads(meta.read_text())
        net = make(info["kind"], *info["args"])
        params = ms.load_checkpoint(str(meta.with_suffix(".ckpt")))
        not_loaded, unused = ms.load_param_into_net(net, params, strict_load=True)
        net.set_train(False)
        arr = np.load(meta.with_suffix(".npz"))
        got = net(ms.Tensor(arr["x"])).asnumpy()
        diff = float(np.abs(got - arr["logits"]).max())
        scale = float(np.abs(arr["logits"]).max())
        ok = not not_loaded and diff <= 1e-4 * scale
        bad += not ok
        print(f"{meta.stem}: MindSpore {ms.__version__} loaded {len(params)} entries, not loaded {not_loaded}, "
              f"unused {unused}; max |logits MindSpore - PyTorch| = {diff:.2e} (max |logit| {scale:.2f}) "
              f"{'OK' if ok else 'FAIL'}")
    return 1 if bad else 0


def prepare(d: Path) -> int:
    """(PyTorch side, no MindSpore) write .ckpt files with transferlearn for --verify: fresh random
    PyTorch networks of each fixture's shape, plus full-size ResNet50 (model zoo) and ResNet18 (mindcv)."""
    import torch
    from transferlearn.mindspore import build_resnet, read_ckpt, write_ckpt
    from transferlearn.mindspore.convert import to_mindspore
    from transferlearn.mindspore.names import ms_to_torch
    from transferlearn.mindspore.resnet import infer_config
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    jobs = {k: (k, list(v)) for k, v in FIXTURES.items()}
    jobs["resnet50_modelzoo"] = ("zoo_bottleneck", [[3, 4, 6, 3], 64, [256, 512, 1024, 2048], 5])
    jobs["resnet18_mindcv"] = ("mindcv_basic", [[2, 2, 2, 2], 64, [64, 128, 256, 512], 5])
    for name, (kind, args) in jobs.items():
        src = OUT / f"{kind}.ckpt"  # the shape (and the variant) of the real MindSpore network
        cfg = infer_config(ms_to_torch(read_ckpt(src))[0])
        if name != kind:
            bottleneck = kind.endswith("bottleneck")
            widths = [w // 4 for w in args[2]] if kind.startswith("zoo") and bottleneck else args[2]
            cfg = {**cfg, "layers": args[0], "stem": args[1], "widths": widths, "num_classes": args[3]}
        variant = {"zoo_bottleneck": "mindspore-same", "zoo_basic": "mindspore-base"}.get(kind, "mindcv")
        net = build_resnet(cfg, variant, args[3]).eval()
        for m in net.modules():  # non-trivial BatchNorm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0), m.running_mean.normal_(0, 0.2), m.bias.data.normal_(0, 0.2)
        tensors, _ = to_mindspore(net.state_dict(), variant)
        write_ckpt(tensors, d / f"{name}.ckpt", crc=name == "zoo_basic")
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            logits = net(x).numpy()
        np.savez(d / f"{name}.npz", x=x.numpy(), logits=logits)
        (d / f"{name}.json").write_text(json.dumps({"kind": kind, "args": args}))
        print(f"wrote {d / name}.ckpt ({variant})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--verify", type=Path, default=None, metavar="DIR")
    ap.add_argument("--prepare", type=Path, default=None, metavar="DIR",
                    help="(with torch + transferlearn, no MindSpore) write the files --verify checks")
    a = ap.parse_args()
    if a.prepare:
        return prepare(a.prepare)
    import mindspore as ms
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ms.set_seed(0)
    if a.verify:
        return verify(a.verify)
    a.out.mkdir(parents=True, exist_ok=True)
    make_networks(a.out)
    make_edge_cases(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
