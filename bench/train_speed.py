"""Training speed: the original project's way of training against ours, in the same run.

Baseline (as the project started): a ``datasets.Dataset`` of PIL images, a torch
``Dataset`` wrapper applying ``ToTensor`` and ``Normalize`` per item,
``DataLoader(batch_size=100, shuffle=True)``, Adam 1e-3, one epoch.
Ours: whole-dataset tensors, batched indexing, channels_last (``core.train.train``).

Prints both times, both accuracies and the ratios against the issue's goals:
one epoch of ours <= 0.15x the baseline at >= 98.5%; the default recipe >= 99.0%
(mean of 3 seeds) in <= 0.5x the baseline's epoch.

    python bench/train_speed.py            # full run, a few minutes
    python bench/train_speed.py --quick    # one seed of the default recipe
    python bench/train_speed.py --limit    # the trainer against the machine's practical peak, and a profile
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from core.config import recipe
from core.data import load_mnist
from core.evaluate import evaluate
from core.model import MNIST_MEAN, MNIST_STD, MnistCNN, training_flops
from core.train import load_or_train, train


class PilDataset(torch.utils.data.Dataset):
    """The original wrapper: per-item PIL → ToTensor → Normalize."""

    def __init__(self, hf_dataset: datasets.Dataset):
        self.data = hf_dataset
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        item = self.data[i]
        return self.transform(item["image"]), item["label"]


def baseline_epoch(data) -> tuple[float, float]:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    hf = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in data.train.images], "label": data.train.labels.tolist()},
        features=features,
    )
    loader = torch.utils.data.DataLoader(PilDataset(hf), batch_size=100, shuffle=True)
    torch.manual_seed(0)
    model = MnistCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    model.train()
    for images, labels in loader:
        # Our model normalises internally; undo the transform's Normalize so the inputs
        # match (one batched op, negligible next to the per-item work being measured).
        loss = torch.nn.functional.cross_entropy(model(images * MNIST_STD + MNIST_MEAN), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return seconds, evaluate(model, data.test).accuracy


def ours(data, config) -> tuple[float, float]:
    start = time.perf_counter()
    _model, history = train(config, data, torch.device("cpu"))
    return time.perf_counter() - start, history[-1]["test_accuracy"]


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix multiply on this machine's threads (median of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def limit(data) -> None:
    """The trainer's share of the machine's practical peak, and where one epoch's time goes."""
    config = recipe("default", epochs=1)
    flops = training_flops(images=len(data.train))
    torch.set_num_threads(2)
    seconds, _ = ours(data, config)
    peak = matmul_peak()
    print(f"one epoch: {flops / 1e9:.0f} GFLOP (forward and backward, from the layer shapes) in {seconds:.2f} s")
    print(
        f"trainer {flops / seconds / 1e9:.1f} GFLOP/s; a 2048x2048 matrix multiply on {torch.get_num_threads()} "
        f"threads {peak / 1e9:.1f} GFLOP/s: the trainer reaches {flops / seconds / peak:.0%} of it"
    )
    small = recipe("default", epochs=1, train_limit=12_800)  # 100 batches
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train(small, data, torch.device("cpu"), adaptive_threads=False)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed of the default recipe")
    parser.add_argument("--limit", action="store_true", help="FLOPs, the machine's peak and a profile only")
    args = parser.parse_args()
    data = load_mnist()
    if args.limit:
        ours(data, recipe("default", epochs=1, train_limit=5000))  # warm-up
        limit(data)
        return
    torch.manual_seed(0)
    ours(data, recipe("default", epochs=1, train_limit=5000))  # warm-up: oneDNN primitives, allocator

    base_s, base_acc = baseline_epoch(data)
    print(f"baseline  one epoch (PIL + per-item transforms + DataLoader): {base_s:6.2f} s  accuracy {base_acc:.2%}")

    one_s, one_acc = ours(data, recipe("default", epochs=1))
    print(f"ours      one epoch (default recipe, epochs=1):              {one_s:6.2f} s  accuracy {one_acc:.2%}")
    print(f"          ratio {one_s / base_s:.3f}x baseline (goal <= 0.15x at >= 98.5%)")

    ref_s, ref_acc = ours(data, recipe("reference"))
    print(f"ours      reference recipe (Adam 1e-3, batch 100, 1 epoch):  {ref_s:6.2f} s  accuracy {ref_acc:.2%}")

    with tempfile.TemporaryDirectory() as root:
        load_or_train(recipe("reference"), root=Path(root))
        start = time.perf_counter()
        cached = load_or_train(recipe("reference"), root=Path(root))
        hit = time.perf_counter() - start
    print(
        f"ours      cache hit, same settings again:                    {hit:6.3f} s  (trained_now={cached.trained_now})"
    )

    seeds = [0] if args.quick else [0, 1, 2]
    runs = [ours(data, recipe("default", seed=s)) for s in seeds]
    for seed, (s, acc) in zip(seeds, runs, strict=True):
        print(f"ours      default recipe, seed {seed}:                          {s:6.2f} s  accuracy {acc:.2%}")
    mean_s = statistics.mean(s for s, _ in runs)
    mean_acc = float(np.mean([acc for _, acc in runs]))
    print(
        f"          default recipe: mean {mean_s:.2f} s = {mean_s / base_s:.3f}x baseline, "
        f"mean accuracy {mean_acc:.2%} (goal >= 99.0% in <= 0.5x)"
    )


if __name__ == "__main__":
    main()
