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
    python bench/train_speed.py --where    # steps alone per layout, batch, threads, torch.compile
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


def step_rate(
    images: torch.Tensor, labels: torch.Tensor, batch: int, layout=torch.channels_last, compiled: bool = False
) -> tuple[float, float]:
    """Training steps alone (forward, backward, fused Adam; no test pass, no progress): GFLOP/s
    over 40 timed batches of ``batch`` after 10 to warm up, and the seconds the warm-up took
    (a compiled model's compilation)."""
    torch.manual_seed(0)
    model = MnistCNN().to(memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    step_model = torch.compile(model) if compiled else model
    x = images.contiguous(memory_format=layout)
    per_image = training_flops(images=1)

    def steps(count: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            idx = torch.randint(0, len(x), (batch,), generator=torch.Generator().manual_seed(i))
            loss = torch.nn.functional.cross_entropy(step_model(x[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    warm = steps(10)
    seconds = steps(40)
    return per_image * batch * 40 / seconds / 1e9, warm


def where(data) -> None:
    """Where the rest of an epoch's time goes: training steps alone under each setting, in GFLOP/s."""
    images = torch.from_numpy(data.train.images[:20_000]).unsqueeze(1).float().div_(255.0)
    labels = torch.from_numpy(data.train.labels[:20_000])
    torch.set_num_threads(2)
    peak = matmul_peak() / 1e9
    print(f"2048x2048 matrix multiply, 2 threads: {peak:.1f} GFLOP/s")
    rows = [("as trained: batch 128, 2 threads, channels_last", dict(batch=128))]
    rows += [("contiguous (NCHW) layout", dict(batch=128, layout=torch.contiguous_format))]
    rows += [(f"batch {b} (fewer steps, same work)", dict(batch=b)) for b in (512, 2048)]
    for name, kwargs in rows:
        rate, _ = step_rate(images, labels, **kwargs)
        print(f"{name:52s} {rate:6.1f} GFLOP/s  {rate / peak:4.0%} of the multiply")
    torch.set_num_threads(1)
    rate, _ = step_rate(images, labels, 128)
    print(f"{'one thread':52s} {rate:6.1f} GFLOP/s  {rate / (matmul_peak() / 1e9):4.0%} of a one-thread multiply")
    torch.set_num_threads(2)
    try:
        rate, warm = step_rate(images, labels, 128, compiled=True)
        print(f"{'torch.compile (inductor, C++ on the CPU)':52s} {rate:6.1f} GFLOP/s  after {warm:.1f} s compiling")
    except Exception as err:  # no compiler, or the backend refuses: say so, do not fail the bench
        print(f"torch.compile: not available here ({type(err).__name__}: {str(err)[:120]})")
    model = MnistCNN().to(memory_format=torch.channels_last)
    test = (
        torch.from_numpy(data.test.images)
        .unsqueeze(1)
        .float()
        .div_(255.0)
        .contiguous(memory_format=torch.channels_last)
    )
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(test), 1000):
            model(test[i : i + 1000])
    print(f"the test pass after each saved point (10,000 digits, forward only): {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed of the default recipe")
    parser.add_argument("--limit", action="store_true", help="FLOPs, the machine's peak and a profile only")
    parser.add_argument("--where", action="store_true", help="training steps alone under each setting")
    args = parser.parse_args()
    data = load_mnist()
    if args.where:
        where(data)
        return
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
