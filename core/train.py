"""Train the CNN fast on whole-dataset tensors, and cache the result on disk.

``python -m core.train`` trains (or loads from the cache) and prints the parameter table,
the loss every 100 batches, the test accuracy per epoch and where the checkpoint went.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from core import checkpoints
from core.architectures import arch_model
from core.checkpoints import CheckpointError, CheckpointInfo
from core.config import (
    MIN_FIT,
    RECIPES,
    NetSpec,
    TrainConfig,
    choose_device,
    data_source,
    recipe,
    shuffled_labels_config,
)
from core.data import Mnist, load_mnist, to_tensor
from core.evaluate import predict_logits, save_evaluation
from core.model import MNIST_MEAN, MNIST_STD, MnistCNN, format_layer_table, layer_table, new_model
from core.network import Contract, Network, NetworkError
from core.network_files import format_layers
from core.runs import Point
from core.thread_choice import ThreadChooser, use_threads

log = logging.getLogger(__name__)
PROGRESS_EVERY = 100  # batches between progress reports, like the reference run's log
LOCK_TIMEOUT_S = 3600  # a second process waits this long for another one's training


@dataclass(frozen=True)
class Progress:
    """A training progress report: passed to the ``progress`` callback."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based, within the epoch
    batches: int
    loss: float  # mean training loss since the last report
    test_accuracy: float | None  # after the last finished epoch, None before the first

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class TrainedModel:
    """A model ready to use, with where it lives and how it was made."""

    model: MnistCNN  # on the CPU, in eval mode; treat as read-only
    info: CheckpointInfo
    history: list[dict]
    trained_now: bool  # False when it came from the cache
    notice: str | None = None  # e.g. a damaged checkpoint that was retrained


def train(
    config: TrainConfig,
    data: Mnist,
    device: torch.device,
    progress: ProgressCallback | None = None,
    on_epoch: Callable[[int, MnistCNN, dict, torch.Tensor | None], None] | None = None,
    adaptive_threads: bool = True,
) -> tuple[MnistCNN, list[dict]]:
    """Train from scratch; returns the model (on ``device``) and the history: one record per
    saved point (per epoch, or ``config.saves_per_epoch`` per epoch, whose ``"epoch"`` is then
    fractional: 1.5), after each of which ``on_epoch(point, model, record, test_logits)`` is
    called (the test set's logits, (10000, 10) on the CPU, from the pass that measured the record).

    On the CPU, ``adaptive_threads`` lets :class:`core.thread_choice.ThreadChooser` pick the thread
    count (up to the calling thread's) from the measured speed of each window of batches, so
    training slows gracefully when other work takes a core. Different thread counts round
    differently: weights then reproduce to about 1e-5, not bit for bit (pass False, or
    ``--threads N`` on the command line, for bitwise runs).

    A shuffled-label network (``config.shuffle_labels``) is a check, not a model to explore:
    it is tested on the test set after its last epoch only (each test pass costs as much as
    an epoch of its small training subset), and ``on_epoch`` is called for that epoch alone.

    The whole training set is one float tensor on the device, indexed in batches: no
    DataLoader and no per-item transform, which is what makes an epoch take seconds.
    """
    shuffle = torch.Generator().manual_seed(config.seed)
    train_split = data.train
    limit = config.train_limit or len(train_split)
    # channels_last: measured ~1.7x faster per epoch on the CPU for these small convolutions.
    images = to_tensor(train_split.images[:limit]).to(device, memory_format=torch.channels_last)  # (N, 1, 28, 28)
    labels = training_labels(config, data).to(device)  # (N,) int64
    test_images = to_tensor(data.test.images).to(device, memory_format=torch.channels_last)  # (10000, 1, 28, 28)
    test_labels = torch.from_numpy(data.test.labels)

    # Its own generator, not torch's global one, which other threads of a server draw from.
    if config.arch:  # a host's class (core.architectures), trained through the pages' wrapper
        model = arch_model(config.arch, config.seed).to(device, memory_format=torch.channels_last)
    else:
        model = new_model(config.seed).to(device, memory_format=torch.channels_last)
    # fused: one kernel for all parameters instead of a dozen small ops each (~25% faster here).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    batches = math.ceil(len(labels) / config.batch_size)
    scheduler = None
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * batches
        )
    elif config.schedule != "constant":
        raise ValueError(f"unknown schedule {config.schedule!r}: use 'onecycle' or 'constant'")

    history: list[dict] = []
    test_accuracy = None
    saves = config.save_batches(batches)  # after which batches of an epoch a point is saved
    chooser = ThreadChooser() if adaptive_threads and device.type == "cpu" else None
    try:
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            model.train()
            order = torch.randperm(len(labels), generator=shuffle).to(device)
            # Losses are summed on the device and read every PROGRESS_EVERY batches: a .item()
            # per batch would make a GPU wait for every step.
            running = torch.zeros((), device=device)
            segment_loss = torch.zeros((), device=device)
            count = segment_start = 0
            for batch in range(1, batches + 1):
                idx = order[(batch - 1) * config.batch_size : batch * config.batch_size]
                loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if chooser is not None:
                    chooser.batch_done()
                running += loss.detach()
                count += 1
                if progress is not None and (batch % PROGRESS_EVERY == 0 or batch == batches):
                    progress(Progress(epoch, config.epochs, batch, batches, running.item() / count, test_accuracy))
                    segment_loss += running
                    running.zero_()
                    count = 0
                if batch not in saves:
                    continue
                segment_loss += running
                running.zero_()
                count = 0
                point = (epoch - 1) * config.saves_per_epoch + saves.index(batch) + 1
                record = {
                    "epoch": config.point_epoch(point) if config.saves_per_epoch > 1 else epoch,
                    "train_loss": segment_loss.item() / (batch - segment_start),
                    "test_loss": None,
                }
                segment_loss.zero_()
                segment_start = batch
                if config.shuffle_labels and point < config.points:
                    history.append({**record, "test_accuracy": None, "seconds": time.perf_counter() - start})
                    start = time.perf_counter()
                    if chooser is not None:
                        chooser.restart_window()
                    continue
                logits = predict_logits(model, test_images)
                test_loss = torch.nn.functional.cross_entropy(logits, test_labels).item()
                test_accuracy = (logits.argmax(1) == test_labels).float().mean().item()
                record.update(test_loss=test_loss, test_accuracy=test_accuracy, seconds=time.perf_counter() - start)
                history.append(record)
                if on_epoch is not None:
                    on_epoch(point, model, record, logits.cpu())
                start = time.perf_counter()  # each record's seconds are its own segment's
                if chooser is not None:
                    chooser.restart_window()  # the test pass and the save are not batches
    finally:
        if chooser is not None:
            use_threads(chooser.most)  # the calling thread's setting as it was
    return model.to(memory_format=torch.contiguous_format).eval(), history


def training_labels(config: TrainConfig, data: Mnist) -> torch.Tensor:
    """int64 (N,): the labels ``config`` trains on: the first ``train_limit`` training labels,
    permuted at random (seeded) for a shuffled-label network."""
    labels = torch.from_numpy(data.train.labels[: config.train_limit or len(data.train)])
    if config.shuffle_labels:  # the data-randomisation check: labels carry no information
        labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed + 1))]
    if config.flip_labels:
        labels = labels.clone()
        where, to = flipped(config, labels)
        labels[where] = to
    return labels


def flipped(config: TrainConfig, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Purpose-made label noise: which of these training labels ``config.flip_labels`` changes
    (int64 (K,), K = round(share x N), sorted) and to what (int64 (K,), each a different class
    from the given one, drawn uniformly from the other classes the labels hold: nine for the
    digits). Seeded by the config's seed."""
    if not 0.0 <= config.flip_labels <= 1.0:
        raise ValueError(f"flip_labels is a share of the training labels, not {config.flip_labels}")
    generator = torch.Generator().manual_seed(config.seed + 2)
    count = round(config.flip_labels * len(labels))
    where = torch.randperm(len(labels), generator=generator)[:count].sort().values
    classes = int(labels.max()) + 1 if len(labels) else 2
    shift = torch.randint(1, classes, (count,), generator=generator)
    return where, (labels[where] + shift) % classes


def fit_accuracy(model: MnistCNN, config: TrainConfig, data: Mnist) -> float:
    """The share of its own training labels (shuffled ones included) the model reproduces."""
    labels = training_labels(config, data)
    logits = predict_logits(model, to_tensor(data.train.images[: len(labels)]))
    return (logits.argmax(1) == labels).float().mean().item()


def load_or_train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    device: str = "auto",
    root: Path | None = None,
    waiting: Callable[[], None] | None = None,
    adaptive_threads: bool = True,
) -> TrainedModel:
    """The cached model for ``config``, training it first if no valid one exists.

    A file lock makes two processes asking at once produce one checkpoint: the second
    waits (calling ``waiting`` once, so it can say so), then loads what the first wrote.
    A damaged or unverifiable checkpoint is reported (in the log and in
    ``TrainedModel.notice``), discarded and retrained; it is never used.
    """
    data = load_mnist(config.data_source)
    key = checkpoints.model_key(config, data.fingerprint)
    folder = checkpoints.models_root(root) / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire(timeout=0)
    except Timeout:  # another process is training this model: wait for it, then load
        if waiting is not None:
            waiting()
        lock.acquire()
    try:
        notice = None
        if (folder / checkpoints.META).exists():
            try:
                return _load_cached(folder)
            except CheckpointError as err:
                notice = f"The cached model could not be verified and has been retrained: {err}"
                log.warning(notice)
        checkpoints.discard(folder)  # an unfinished or damaged folder starts afresh
        trained = _train_into(folder, config, data, choose_device(device), progress, adaptive_threads)
        return dataclasses.replace(trained, notice=notice)
    finally:
        lock.release()


def load_cached(key: str, root: Path | None = None, epoch: int | None = None) -> TrainedModel:
    """A cached model by key (optionally the weights after an earlier epoch)."""
    return _load_cached(checkpoints.models_root(root) / key, epoch)


def _load_cached(folder: Path, epoch: int | None = None) -> TrainedModel:
    info = checkpoints.read_info(folder)
    model = checkpoints.load_checkpoint(folder, epoch)
    checkpoints.mark_used(folder)
    return TrainedModel(model=model, info=info, history=checkpoints.read_history(folder), trained_now=False)


def _train_into(
    folder: Path,
    config: TrainConfig,
    data: Mnist,
    device: torch.device,
    progress: ProgressCallback | None,
    adaptive_threads: bool = True,
) -> TrainedModel:
    folder.mkdir(parents=True, exist_ok=True)
    hashes: dict[str, str] = {}
    records: list[dict] = []
    started = datetime.now(UTC).isoformat(timespec="seconds")

    def save_epoch(epoch: int, model: MnistCNN, record: dict, test_logits: torch.Tensor | None) -> None:
        name = checkpoints.epoch_file(epoch)  # epoch: the saved point
        hashes[name] = checkpoints.save_weights(folder / name, model)
        records.append(record)
        if test_logits is not None:  # the pages' test evaluation of this point, already computed
            save_evaluation(Point(folder, epoch, "test", data.fingerprint), test_logits)
        if epoch < config.points:  # servable before training ends: see checkpoints.read_provisional
            checkpoints.write_json(
                folder / checkpoints.PROVISIONAL,
                {
                    "config": dataclasses.asdict(config),
                    "epochs_done": epoch,
                    "test_accuracy": record["test_accuracy"],
                    "train_seconds": time.perf_counter() - start,
                    "device": str(device),
                    "created": started,
                    "data_source": data.source,
                    "data_fingerprint": data.fingerprint,
                    "sha256": dict(hashes),
                    "history": records,
                },
            )

    start = time.perf_counter()
    model, history = train(config, data, device, progress, on_epoch=save_epoch, adaptive_threads=adaptive_threads)
    seconds = time.perf_counter() - start
    # A shuffled-label network is only usable if it memorised its labels: record how well.
    fit = {"fit_accuracy": fit_accuracy(model, config, data)} if config.shuffle_labels else {}
    checkpoints.write_json(folder / checkpoints.HISTORY, history)
    checkpoints.write_json(
        folder / checkpoints.META,  # last: its presence marks the folder complete
        {
            "config": dataclasses.asdict(config),
            "epochs_done": config.points,  # saved points: config.epochs unless saved more often
            "test_accuracy": history[-1]["test_accuracy"],
            "train_seconds": seconds,
            "device": str(device),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_source": data.source,
            "data_fingerprint": data.fingerprint,
            "sha256": hashes,
            **fit,
        },
    )
    (folder / checkpoints.PROVISIONAL).unlink(missing_ok=True)  # the final weights replace it
    trained = _load_cached(folder)
    return dataclasses.replace(trained, trained_now=True)


def load_provisional(key: str, root: Path | None = None, epoch: int | None = None) -> TrainedModel | None:
    """A model still training, as far as it got: the weights after its latest saved epoch (or an
    earlier one), with what ``checkpoints.read_provisional`` says; None when the folder holds no
    provisional weights (not started, or finished: then :func:`load_cached` loads it)."""
    folder = checkpoints.models_root(root) / key
    try:
        info, history = checkpoints.read_provisional(folder)
        model = checkpoints.load_provisional_checkpoint(folder, epoch)
    except CheckpointError:
        return None
    return TrainedModel(model=model, info=info, history=history, trained_now=False)


@dataclass(frozen=True)
class ShuffledNetwork:
    """The network the data-randomisation check compares a model's maps with, or why there is none."""

    model: MnistCNN | None  # None when not trained yet (``missing``) or when it did not memorise its labels
    missing: bool
    message: str  # how it was made and how well it fit, or why it cannot be used


def shuffled_label_network(
    config: TrainConfig, root: Path | None = None, train_if_missing: bool = True
) -> ShuffledNetwork:
    """The memorising shuffled-label network for a model trained with ``config``
    (:func:`core.config.shuffled_labels_config`), trained once and cached like any model.
    It is refused, with the reason, unless it reproduces at least ``MIN_FIT`` of its
    shuffled labels: a network that died or did not fit is not what the check compares with."""
    shuffled = shuffled_labels_config(config)
    if not train_if_missing:
        key = checkpoints.model_key(shuffled, load_mnist(shuffled.data_source).fingerprint)
        if not (checkpoints.models_root(root) / key / checkpoints.META).is_file():
            return ShuffledNetwork(None, True, "The shuffled-label network is not trained yet.")
    trained = load_or_train(shuffled, root=root)
    fit = trained.info.fit_accuracy
    plural = load_mnist(shuffled.data_source).words.plural  # "digits", or what the data set calls its images
    made = (
        f"{shuffled.train_limit:,} training {plural} with their labels shuffled at random (seed {shuffled.seed}), "
        f"trained {shuffled.epochs} epochs to memorise them"
    )
    if fit is None or fit < MIN_FIT:
        how = "no fit was recorded" if fit is None else f"it reproduces only {fit:.0%} of them"
        return ShuffledNetwork(
            None,
            False,
            f"Not scored: the shuffled-label network ({made}) did not memorise its labels ({how}; at least "
            f"{MIN_FIT:.0%} is needed), so comparing with it would test a dead or unfit network, not one that "
            f"learned nothing about {plural}.",
        )
    return ShuffledNetwork(
        trained.model,
        False,
        f"The shuffled-label network: {made}. It reproduces {fit:.0%} of its shuffled labels (chance: 10%) and "
        f"reads {trained.info.test_accuracy:.0%} of the test {plural} right: it memorised, and knows nothing about "
        f"{plural}.",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default", choices=sorted(RECIPES), help="preset (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    parser.add_argument("--lr", type=float, help="override the recipe's (peak) learning rate")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument(
        "--flip-labels", type=float, help="change this share of the training labels at random (label-noise experiments)"
    )
    parser.add_argument(
        "--saves-per-epoch", type=int, help="save the weights this many times an epoch (1 to 10; default 1)"
    )
    parser.add_argument("--data", dest="data_source", help="'bundled' (default), a folder of IDX files, or hf:NAME")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    parser.add_argument(
        "--threads", type=int, help="train on exactly this many CPU threads (default: chosen by measuring as it goes)"
    )
    parser.add_argument(
        "--arch", help="train another architecture with the recipe: a class as FILE.py:CLASS (default: the reference)"
    )
    parser.add_argument("--dry-run", action="store_true", help="train on 1,000 images for one epoch: a smoke test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    overrides = {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "seed", "data_source", "flip_labels", "saves_per_epoch")
    }
    if args.dry_run:
        overrides.update(epochs=1, train_limit=1000)
    try:
        if args.data_source is not None:  # the app's spelling (an absolute folder), so the keys agree
            overrides["data_source"] = data_source(args.data_source)
        if args.arch:  # checked (it imports, builds and gives one score per class) before training
            overrides["arch"] = NetSpec(args.arch, "-").absolute(Path.cwd()).net
        config = recipe(args.recipe, **overrides)
        device = choose_device(args.device)
        if config.arch:
            data = load_mnist(config.data_source)
            digits = to_tensor(data.test.images[:64])
            module = arch_model(config.arch, config.seed).source
            network = Network(module, len(data.classes), digits, Contract(MNIST_MEAN, MNIST_STD), where=args.arch)
    except (ValueError, NetworkError) as err:
        parser.error(str(err))
    print(format_layers(network) if config.arch else format_layer_table(layer_table()))
    print(f"\nrecipe {config.recipe}: {config}\ndevice {device}\n")

    def report(p: Progress) -> None:
        print(f"epoch {p.epoch}/{p.epochs}  batch {p.batch:>4}/{p.batches}  loss {p.loss:.4f}", flush=True)

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, not {args.threads}")
        use_threads(args.threads)
    start = time.perf_counter()
    trained = load_or_train(config, progress=report, device=str(device), adaptive_threads=args.threads is None)
    seconds = time.perf_counter() - start
    for record in trained.history:
        print(
            f"epoch {record['epoch']:g}: train loss {record['train_loss']:.4f}  "
            f"test loss {record['test_loss']:.4f}  test accuracy {record['test_accuracy']:.2%}  "
            f"({record['seconds']:.1f} s)"
        )
    how = "trained" if trained.trained_now else "loaded from the cache"
    print(f"\ntest accuracy {trained.info.test_accuracy:.2%}, {how} in {seconds:.2f} s")
    print(f"checkpoint: {trained.info.folder / checkpoints.epoch_file(trained.info.epochs_done)}")
    if trained.notice:
        print(trained.notice, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
