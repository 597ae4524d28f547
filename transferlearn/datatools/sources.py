"""The datasets `data get` knows: where each one's files are, their checksums, its classes.

Declarations only (no numpy, no PIL), so `transferlearn data get --help` can list them cheaply;
getting one is get.py's work.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ChecksumError, DatasetGetError, UnsafeArchiveError  # noqa: F401  (raised by get.py)

SOURCE_FILE = "transferlearn_source.json"


@dataclass
class Resource:
    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None  # published upstream/torchvision value, when there is no published sha256


@dataclass
class DatasetSpec:
    name: str
    description: str
    resources: list[Resource]
    kind: str  # "zip" (ImageFolder zip) | "idx" (MNIST-style) | "cifar10"
    classes: list[str] = field(default_factory=list)
    local_dirs: list[str] = field(default_factory=list)  # packaged copies of the resources
    homepage: str = ""


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    return list(DATASETS)


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DatasetGetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def _idx_resources(base: str, md5s: dict[str, str]) -> list[Resource]:
    return [Resource(base + f, f, md5=m) for f, m in md5s.items()]


register(DatasetSpec(
    "hymenoptera", "ants vs bees, 2 classes, ~400 JPEGs (the PyTorch transfer-learning tutorial data)",
    [Resource("https://download.pytorch.org/tutorial/hymenoptera_data.zip", "hymenoptera_data.zip")], "zip",
    homepage="https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html"))
register(DatasetSpec(
    "fruit30", "30 fruit classes, train/val split (OpenMMLab MMClassification tutorial data)",
    [Resource("https://zihao-openmmlab.obs.cn-east-3.myhuaweicloud.com/20220716-mmclassification/dataset/"
              "fruit30/fruit30_split.zip", "fruit30_split.zip")], "zip",
    homepage="https://github.com/TommyZihao/MMClassification_Tutorials"))
register(DatasetSpec(
    "canidae", "dogs vs wolves, 2 classes (MindSpore transfer-learning tutorial data)",
    [Resource("https://mindspore-website.obs.cn-north-4.myhuaweicloud.com/notebook/datasets/intermediate/"
              "Canidae_data.zip", "Canidae_data.zip")], "zip",
    homepage="https://www.mindspore.cn/tutorials/"))
register(DatasetSpec(
    "mnist", "handwritten digits 0-9, 28x28 grey, 60000 train / 10000 val PNGs",
    _idx_resources("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}), "idx",
    classes=[str(i) for i in range(10)], homepage="http://yann.lecun.com/exdb/mnist/"))
register(DatasetSpec(
    "fashion-mnist", "Zalando clothing, 10 classes, 28x28 grey, 60000 train / 10000 val PNGs",
    _idx_resources("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}), "idx",
    classes=["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle_boot"],
    local_dirs=["/usr/share/datasets/fashion-mnist"], homepage="https://github.com/zalandoresearch/fashion-mnist"))
register(DatasetSpec(
    "cifar10", "10 classes of 32x32 colour photos, 50000 train / 10000 val PNGs",
    [Resource("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
              md5="c58f30108f718f92721af3b95e74349a")], "cifar10",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html"))
