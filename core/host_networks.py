"""A host's network in the model cache: opened once, kept as a model folder, loaded like any model.

``--net FILE.py:CLASS --weights FILE`` (core.config.NetSpec) is checked through the network
contract (core.network_files.open_host_network: the class imports, the weights fit it, it gives
one finite score per class on real digits, its graph can be followed) and then kept as
``models/<network key>/``, the same folder every cached model has: its weights as
``epoch_01.safetensors`` (checksummed in ``meta.json``), its test evaluation, a one-point
history, and in ``meta.json`` a ``network`` record of where it came from. So links, runs and
every page's cache treat it as one more model key; its key changes when its class file, its
weights, the data or its contract change.

Loading it (:func:`load_host_model`) imports the class again and refuses a class file whose
source changed since the folder was written: the host restarts the server to open the new one
under its new key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from filelock import FileLock

from core import checkpoints
from core.checkpoints import CheckpointError, CheckpointInfo, NetworkRecord
from core.config import NetSpec, TrainConfig
from core.data import Mnist, to_tensor
from core.evaluate import predict_logits, save_evaluation
from core.network import Contract, NetworkError, scored
from core.network_files import CHECK_DIGITS, build, import_class, open_host_network
from core.runs import Point

log = logging.getLogger(__name__)
HOST_RECIPE = "host"  # the recipe a host's network records: it was not trained here


def open_into_cache(spec: NetSpec, data: Mnist, root: Path | None = None) -> CheckpointInfo:
    """``spec``'s network opened on ``data`` and kept in the model cache (once: a folder already
    written for the same files is reused); raises :class:`NetworkError` naming what is wrong."""
    contract = Contract(spec.mean, spec.std, spec.output)
    digits = to_tensor(data.test.images[:CHECK_DIGITS])
    network, key = open_host_network(
        spec.net, Path(spec.weights), len(data.classes), digits, data.fingerprint, contract
    )
    folder = checkpoints.models_root(root) / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if (folder / checkpoints.META).exists():
            try:
                return checkpoints.read_info(folder)
            except CheckpointError as err:
                log.warning("%s: rewritten (%s)", folder, err)
        checkpoints.discard(folder)
        folder.mkdir()
        started = time.perf_counter()
        name = checkpoints.epoch_file(1)
        sha256 = checkpoints.save_weights(folder / name, network.module)
        model = scored(network.module, network.checked_contract(), spec.net)
        logits = predict_logits(model, to_tensor(data.test.images))
        labels = torch.as_tensor(data.test.labels, dtype=torch.long)
        accuracy = float((logits.argmax(1) == labels).float().mean())
        loss = float(torch.nn.functional.cross_entropy(logits, labels))
        save_evaluation(Point(folder, 1, "test", data.fingerprint), logits)
        record = NetworkRecord(
            net=spec.net,
            source_sha256=_source_sha256(spec.net),
            weights=spec.weights,
            mean=network.contract.mean,
            std=network.contract.std,
            output=network.output,
        )
        history = [{"epoch": 1, "train_loss": None, "test_loss": loss, "test_accuracy": accuracy, "seconds": 0.0}]
        checkpoints.write_json(folder / checkpoints.HISTORY, history)
        checkpoints.write_json(
            folder / checkpoints.META,  # last: its presence marks the folder complete
            {
                "config": dataclasses.asdict(TrainConfig(recipe=HOST_RECIPE, epochs=1, data_source=data.source)),
                "epochs_done": 1,
                "test_accuracy": accuracy,
                "train_seconds": 0.0,
                "device": "cpu",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "data_source": data.source,
                "data_fingerprint": data.fingerprint,
                "sha256": {name: sha256},
                "network": dataclasses.asdict(record),
            },
        )
        log.info("opened %s as model %s in %.1f s", spec.net, key, time.perf_counter() - started)
        return checkpoints.read_info(folder)


def load_host_model(info: CheckpointInfo, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The host's network a model folder records, with its verified weights ``state``, as the
    pages use a model: [0, 1] images in, logits out (core.network.scored); ``.source`` is the
    host's own module. Raises :class:`CheckpointError` when its class file changed or is gone."""
    record = info.network
    if record is None:
        raise CheckpointError(f"{info.folder}: not a host's network")
    try:
        if _source_sha256(record.net) != record.source_sha256:
            raise CheckpointError(
                f"{record.net.rpartition(':')[0]} changed after model {info.key} was opened from it: "
                "restart the server to open the new version (it gets a new key)"
            )
        cls, _ = import_class(record.net)
        module = build(cls, state, record.net, info.folder / checkpoints.epoch_file(1))
        return scored(module, Contract(record.mean, record.std, record.output), record.net)
    except NetworkError as err:
        raise CheckpointError(f"model {info.key}: {err}") from err


def _source_sha256(net: str) -> str:
    path = Path(net.rpartition(":")[0])
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise CheckpointError(f"{path}: the network's class file cannot be read ({err.strerror or err})") from err
