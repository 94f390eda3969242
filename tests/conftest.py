"""Shared fixtures: a real model trained once per test session into a temporary cache."""

from __future__ import annotations

import pytest
import torch

from core.config import CACHE_ENV, recipe
from core.train import TrainedModel, load_or_train


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> object:
    """A cache folder holding the reference recipe, trained once (~5 s), set as the app's cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="session")
def reference_model(model_cache) -> TrainedModel:
    """The reference recipe (Adam 1e-3, batch 100, one epoch) on the real data, on a fixed thread
    count: the same weights every run (the adaptive count rounds differently from run to run, and a
    test of one confusion cell failed on one such model in CI)."""
    return load_or_train(recipe("reference"), root=model_cache, adaptive_threads=False)


def tiny_config(**overrides):
    """A config that trains in well under a second: 2,000 images, one epoch."""
    return recipe("reference", train_limit=2000, **overrides)


@pytest.fixture
def one_torch_thread():
    """Run as the dashboard does (dashboard/Home.py): one torch thread, which on a busy machine
    is many times faster than two. Per test, so the session's reference model trains as always."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def write_idx_folder(folder, train_images, train_labels, test_images, test_labels, classes=None):
    """A folder of the four MNIST-format IDX files (gzip), as torchvision names them, with a
    classes.txt when ``classes`` is given: another data set, as a user would bring one."""
    import gzip

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (
        ("train-images-idx3-ubyte", train_images),
        ("train-labels-idx1-ubyte", train_labels),
        ("t10k-images-idx3-ubyte", test_images),
        ("t10k-labels-idx1-ubyte", test_labels),
    ):
        array = np.ascontiguousarray(array, dtype=np.uint8)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))
    if classes is not None:
        (folder / "classes.txt").write_text("\n".join(classes) + "\n")
    return folder


@pytest.fixture(scope="session")
def named_folder(tmp_path_factory):
    """Another 28x28 data set with its own class names: MNIST's first 6,000 training and all its
    test images, relabelled in Fashion-MNIST's names, so any page naming a class by its number
    instead of its name shows up."""
    from core.data import load_mnist

    data = load_mnist()
    return write_idx_folder(
        tmp_path_factory.mktemp("data") / "clothes",
        data.train.images[:6000],
        data.train.labels[:6000],
        data.test.images,
        data.test.labels,
        FASHION,
    )
