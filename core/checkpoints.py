"""The on-disk model cache: one folder per trained model, keyed by what changes its weights.

A model's folder holds ``epoch_NN.safetensors`` (weights after each saved point),
``history.json`` (loss and accuracy per point), the runs computed from its weights
(evaluations, indexes, maps: ``core.runs``) and ``meta.json``, written last: a folder
without ``meta.json`` is unfinished.
``meta.json`` records the SHA-256 of every weights file; a file whose checksum does not
match, or has no checksum recorded, is refused, never loaded. Every file is written to a
temporary name, fsynced, renamed, and the folder fsynced, so a crash never leaves a
half-written file under a real name. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from core.config import ADDED_FIELDS, TrainConfig, cache_dir
from core.data import BUNDLED, source_name
from core.model import MnistCNN, architecture_signature, new_model

KEY_LENGTH = 16  # hexadecimal characters of a model key
META = "meta.json"
LAST_USED = "last_used"  # an empty file touched whenever the model is loaded: eviction order
HISTORY = "history.json"
# Written after each epoch but the last while a model trains, removed when meta.json is written:
# the weights saved so far can be used before training ends (issue 20).
PROVISIONAL = "provisional.json"
FORMAT_VERSION = 2  # bump when the folder layout changes, so old folders get new keys


class CheckpointError(RuntimeError):
    """A cached checkpoint is missing, truncated or damaged; the message names the file."""


@dataclass(frozen=True)
class ModelRef:
    """Which weights: a cached model's key and an epoch (``None``: the last one saved).

    Written as ``KEY`` or ``KEY@N`` in links; :meth:`parse` reads that back.
    """

    key: str
    epoch: int | None = None

    def __post_init__(self) -> None:
        if not (len(self.key) == KEY_LENGTH and all(c in "0123456789abcdef" for c in self.key)):
            raise ValueError(f"{self.key!r} is not a model key ({KEY_LENGTH} hexadecimal characters)")
        if self.epoch is not None and (type(self.epoch) is not int or self.epoch < 1):
            raise ValueError(f"epoch {self.epoch!r} is not a positive whole number")

    def __str__(self) -> str:
        return self.key if self.epoch is None else f"{self.key}@{self.epoch}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``KEY`` or ``KEY@N``; raises ValueError naming what is wrong."""
        key, at, epoch = text.strip().partition("@")
        if at and not epoch.isdigit():
            raise ValueError(f"{text!r}: the epoch after '@' must be a whole number, not {epoch!r}")
        return cls(key.lower(), int(epoch) if at else None)

    def last(self) -> ModelRef:
        return ModelRef(self.key)


@dataclass(frozen=True)
class NetworkRecord:
    """Where a host's network came from, as its ``meta.json`` records it: the class (an absolute
    ``FILE.py:CLASS``) and the SHA-256 of the file's source, the weights file it was opened from,
    and its contract (normalisation, and the output found on real digits)."""

    net: str
    source_sha256: str
    weights: str
    mean: float
    std: float
    output: str

    @property
    def name(self) -> str:
        return self.net.rpartition(":")[2]


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``meta.json`` says about one cached model."""

    key: str
    folder: Path
    config: TrainConfig
    epochs_done: int  # saved points: epochs, times config.saves_per_epoch (config.point_name names each)
    test_accuracy: float
    train_seconds: float
    device: str
    created: str
    data_source: str
    data_fingerprint: str  # which data the weights were trained on; keys cached evaluations
    fit_accuracy: float | None = None  # a shuffled-label network: the share of its labels it memorised
    provisional: bool = False  # still training: epochs_done epochs of config.epochs are saved
    network: NetworkRecord | None = None  # a host's own network (core.host_networks)

    @property
    def host(self) -> bool:
        """Not the reference architecture: a network the host named (--net), or a host's class
        trained here (``config.arch``)."""
        return self.network is not None or bool(self.config.arch)

    @property
    def architecture(self) -> str:
        """The network's class name (``MnistCNN`` for the reference)."""
        if self.network is not None:
            return self.network.name
        return self.config.arch.rpartition(":")[2] if self.config.arch else "MnistCNN"

    @property
    def label(self) -> str:
        """A short human name, as the dashboard lists it."""
        if self.network is not None:
            weights = Path(self.network.weights).name
            data = "" if self.data_source == BUNDLED else f" · {source_name(self.data_source)}"
            return f"{self.network.name} (the host's, {weights}){data} · {self.test_accuracy:.2%}"
        shuffled = f" · {self.config.arch.rpartition(':')[2]}" if self.config.arch else ""
        shuffled += " · shuffled labels" if self.config.shuffle_labels else ""
        if self.config.flip_labels:
            shuffled += f" · {self.config.flip_labels:.0%} labels flipped"
        epochs = self.config.epochs
        if self.provisional:
            done = f"after {self.config.point_name(self.epochs_done)} of {epochs}, still training"
        else:
            done = f"{epochs} epoch{'s' if epochs != 1 else ''}"
            if self.config.saves_per_epoch > 1:
                done += f" saved {self.config.saves_per_epoch}x each"
        data = "" if self.data_source == BUNDLED else f" · {source_name(self.data_source)}"
        return f"{self.config.recipe}{data} · {done} · seed {self.config.seed}{shuffled} · {self.test_accuracy:.2%}"


def model_key(config: TrainConfig, data_fingerprint: str) -> str:
    """A short hash of everything that changes the weights: settings, data, architecture."""
    settings = {
        name: value
        for name, value in dataclasses.asdict(config).items()
        if not (name in ADDED_FIELDS and value == ADDED_FIELDS[name])
    }
    payload = json.dumps(
        {
            "config": settings,
            "data": data_fingerprint,
            "architecture": architecture_signature() if not config.arch else _arch_signature(config.arch),
            "format": FORMAT_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def _arch_signature(arch: str) -> str:
    from core.architectures import signature

    return signature(arch)


def models_root(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "models"


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def epoch_file(epoch: int) -> str:
    return f"epoch_{epoch:02d}.safetensors"


def save_weights(path: Path, model: torch.nn.Module) -> str:
    """Save a state dict as safetensors, atomically; returns the file's SHA-256."""
    own = getattr(model, "source", model)  # a wrapped architecture (core.network.scored): the class's own keys
    data = save_safetensors({k: v.detach().cpu().contiguous() for k, v in own.state_dict().items()})
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: Path, expected_sha256: str | None, arch: str = "") -> MnistCNN:
    """A model on the CPU from a safetensors file, after checking its checksum and keys.

    Without a recorded checksum the file cannot be verified, so it is refused.
    """
    state = verified_state(path, expected_sha256)
    if arch:  # another architecture trained here
        from core.architectures import arch_model
        from core.network import NetworkError

        try:
            return arch_model(arch, state=state)
        except NetworkError as err:
            raise CheckpointError(f"{path}: {err}") from err
    model = new_model()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model ({err})") from err
    return model.eval()


def verified_state(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose SHA-256 is the one recorded (none recorded: refused)."""
    if not expected_sha256:
        raise CheckpointError(f"{path}: no checksum is recorded for it in {META}, so it cannot be trusted")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err})") from err
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(f"{path}: checksum mismatch, the file is truncated or damaged")
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{path}: not a valid safetensors file ({err})") from err


def write_json(path: Path, value: object) -> None:
    atomic_write(path, json.dumps(value, indent=2).encode())


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable or not valid JSON ({err})") from err


def _info(folder: Path, name: str) -> tuple[CheckpointInfo, dict]:
    """A model's description from ``meta.json`` or ``provisional.json`` (``name``), and the raw
    JSON; raises :class:`CheckpointError` when it is missing or malformed."""
    meta = read_json(folder / name)
    try:
        info = CheckpointInfo(
            key=folder.name,
            folder=folder,
            config=TrainConfig(**meta["config"]),
            epochs_done=int(meta["epochs_done"]),
            test_accuracy=float(meta["test_accuracy"]),
            train_seconds=float(meta["train_seconds"]),
            device=str(meta["device"]),
            created=str(meta["created"]),
            data_source=str(meta["data_source"]),
            data_fingerprint=str(meta["data_fingerprint"]),
            fit_accuracy=None if meta.get("fit_accuracy") is None else float(meta["fit_accuracy"]),
            provisional=name == PROVISIONAL,
            network=None if meta.get("network") is None else NetworkRecord(**meta["network"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / name}: missing or malformed field ({err})") from err
    return info, meta


def read_info(folder: Path) -> CheckpointInfo:
    """Parse ``meta.json``; raises :class:`CheckpointError` when it is missing or malformed."""
    return _info(folder, META)[0]


def read_provisional(folder: Path) -> tuple[CheckpointInfo, list[dict]]:
    """What a model still training has saved so far (``provisional.json``), and its history;
    raises :class:`CheckpointError` when there is none, or when the model is complete."""
    if (folder / META).exists():
        raise CheckpointError(f"{folder}: training is complete")
    info, meta = _info(folder, PROVISIONAL)
    history = meta.get("history")
    if not isinstance(history, list):
        raise CheckpointError(f"{folder / PROVISIONAL}: missing or malformed field (history)")
    return info, history


def load_provisional_checkpoint(folder: Path, epoch: int | None = None) -> MnistCNN:
    """Weights a model still training has saved (``epoch``, default the latest), verified
    against the checksums ``provisional.json`` records."""
    meta = read_json(folder / PROVISIONAL)
    done = int(meta.get("epochs_done", 0))
    epoch = done if epoch is None else epoch
    if not 1 <= epoch <= done:
        raise CheckpointError(f"{folder}: epoch {epoch} is not saved yet (epochs 1..{done} are)")
    name = epoch_file(epoch)
    return load_weights(folder / name, meta.get("sha256", {}).get(name), meta.get("config", {}).get("arch", ""))


def load_checkpoint(folder: Path, epoch: int | None = None) -> MnistCNN:
    """The weights after ``epoch`` (default: the last), verified against ``meta.json``."""
    info = read_info(folder)
    meta = read_json(folder / META)
    epoch = info.epochs_done if epoch is None else epoch
    if not 1 <= epoch <= info.epochs_done:
        raise CheckpointError(f"{folder}: epoch {epoch} is not saved (epochs 1..{info.epochs_done} are)")
    name = epoch_file(epoch)
    if info.config.arch and model_key(info.config, info.data_fingerprint) != info.key:
        raise CheckpointError(
            f"{info.config.arch.rpartition(':')[0]} changed after model {info.key} was trained with it: "
            "train it again (the new version gets a new key)"
        )
    if info.network is not None:  # a host's network: its own class around the verified weights
        from core.host_networks import load_host_model

        return load_host_model(info, verified_state(folder / name, meta.get("sha256", {}).get(name)))
    return load_weights(folder / name, meta.get("sha256", {}).get(name), info.config.arch)


def read_history(folder: Path) -> list[dict]:
    """Per-epoch records: epoch, train_loss, test_loss, test_accuracy, seconds."""
    history = read_json(folder / HISTORY)
    if not isinstance(history, list):
        raise CheckpointError(f"{folder / HISTORY}: expected a list of epochs")
    return history


def list_checkpoints(root: Path | None = None) -> list[CheckpointInfo]:
    """Every finished, readable cached model, newest first; unfinished folders are skipped."""
    base = models_root(root)
    if not base.is_dir():
        return []
    found = []
    for folder in base.iterdir():
        if folder.is_dir() and (folder / META).is_file():
            try:
                found.append(read_info(folder))
            except CheckpointError:
                continue
    return sorted(found, key=lambda info: info.created, reverse=True)


def mark_used(folder: Path) -> None:
    """Record that a model was just used (its ``last_used`` file's time)."""
    # A read-only cache still serves its models; eviction order then falls back to meta.json.
    with contextlib.suppress(OSError):
        (folder / LAST_USED).touch()


def last_used(folder: Path) -> float:
    for name in (LAST_USED, META):
        try:
            return (folder / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


def evict(max_models: int, keep: set[str], root: Path | None = None) -> list[str]:
    """Remove the least recently used models beyond ``max_models``, never one in ``keep``
    (the default, pinned ones, those sessions use) nor one another process holds locked;
    returns the keys removed."""
    from filelock import FileLock, Timeout

    infos = list_checkpoints(root)
    excess = len(infos) - max_models
    removed: list[str] = []
    # A network opened from the host's files is never evicted: it is reopened only at a start.
    # (A host's class trained here is evicted as any trained model is.)
    kept = [i for i in infos if i.key not in keep and i.network is None]
    for info in sorted(kept, key=lambda i: last_used(i.folder)):
        if len(removed) >= excess:
            break
        lock = FileLock(str(info.folder) + ".lock")
        try:
            with lock.acquire(timeout=0):
                discard(info.folder)
                removed.append(info.key)
        except Timeout:
            continue  # being trained or loaded by another process
    return removed


def discard(folder: Path) -> None:
    """Remove a damaged model folder so it can be trained again."""
    shutil.rmtree(folder, ignore_errors=True)
