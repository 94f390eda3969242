import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import checkpoints
from core.checkpoints import CheckpointError
from core.config import TrainConfig
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate, load_or_evaluate, predict_logits
from core.runs import Point
from core.train import load_or_train, main, train
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reference_recipe_reaches_97_percent(reference_model):
    """The original run: one epoch, Adam 1e-3, batch 100, on the real data.

    97.39% in the original project, 97.17-97.20% measured here; the band catches a
    regression of a few tenths of a point, and a recipe that silently became another one.
    """
    accuracy = reference_model.info.test_accuracy
    assert 0.9705 <= accuracy <= 0.980
    assert len(reference_model.history) == 1
    record = reference_model.history[0]
    assert record["test_accuracy"] == accuracy
    assert record["epoch"] == 1 and record["train_loss"] < 0.5 and record["test_loss"] < 0.12

    # The recorded numbers are those of the weights on disk, evaluated afresh.
    split = load_mnist().test
    loaded = checkpoints.load_checkpoint(reference_model.info.folder)
    logits = predict_logits(loaded, to_tensor(split.images))
    labels = torch.from_numpy(split.labels)
    fresh_accuracy = (logits.argmax(1) == labels).double().mean().item()
    assert abs(fresh_accuracy - accuracy) < 1e-6  # the same count of correct digits out of 10,000
    assert torch.nn.functional.cross_entropy(logits, labels).item() == pytest.approx(record["test_loss"], rel=1e-4)


def test_second_call_loads_from_cache(tmp_path, monkeypatch):
    first = load_or_train(tiny_config(), root=tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr("core.train.train", no_training)
    second = load_or_train(tiny_config(), root=tmp_path)
    assert first.trained_now and not second.trained_now
    assert first.info.key == second.info.key
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def _changed(value: object) -> object:
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, str):
        return value + "-other"
    raise TypeError(f"add a changed value for {type(value).__name__} to this test")


def test_cache_key_changes_with_every_setting():
    fingerprint = load_mnist().fingerprint
    config = tiny_config()
    base = checkpoints.model_key(config, fingerprint)
    keys = {"base": base}
    for field in dataclasses.fields(TrainConfig):
        value = _changed(getattr(config, field.name))
        if field.name == "arch":  # another architecture: a class file that exists
            value = f"{Path(__file__).parent / 'nets' / 'lenet.py'}:LeNet5"
        changed = config.replace(**{field.name: value})
        assert getattr(changed, field.name) != getattr(config, field.name)
        keys[field.name] = checkpoints.model_key(changed, fingerprint)
    keys["data"] = checkpoints.model_key(config, "0" * 64)
    assert len(keys) == len(dataclasses.fields(TrainConfig)) + 2
    assert len(set(keys.values())) == len(keys), keys  # every setting, and the data, gives its own key

    # Same settings, same data: same key, also from an equal but separate config object.
    assert checkpoints.model_key(config, fingerprint) == base
    assert checkpoints.model_key(TrainConfig(**dataclasses.asdict(config)), fingerprint) == base
    assert len(base) == checkpoints.KEY_LENGTH


def test_checkpoint_per_epoch_and_history(tmp_path):
    trained = load_or_train(tiny_config(epochs=2), root=tmp_path)
    folder = trained.info.folder
    assert (folder / "epoch_01.safetensors").is_file() and (folder / "epoch_02.safetensors").is_file()
    assert [r["epoch"] for r in trained.history] == [1, 2]
    assert {"train_loss", "test_loss", "test_accuracy", "seconds"} <= set(trained.history[0])
    first = checkpoints.load_checkpoint(folder, epoch=1)
    assert not torch.equal(first.fc2.weight, trained.model.fc2.weight)
    with pytest.raises(CheckpointError, match="epoch 3 is not saved"):
        checkpoints.load_checkpoint(folder, epoch=3)


def test_each_saved_point_leaves_its_test_evaluation_for_the_pages(tmp_path):
    """The trainer writes the test logits it measured each point's accuracy with, where the pages
    look (load_or_evaluate), so no page re-runs the test set; they are the saved weights' own."""
    trained = load_or_train(tiny_config(epochs=2), root=tmp_path)
    folder, data = trained.info.folder, load_mnist()

    class MustNotRun(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the evaluation should have been read from the cache")

    for point in (1, 2):
        cached = load_or_evaluate(MustNotRun(), data.test, Point(folder, point, "test", data.fingerprint))
        again = evaluate(checkpoints.load_checkpoint(folder, epoch=point), data.test)
        assert np.allclose(cached.logits, again.logits, atol=1e-4)
        assert cached.accuracy == pytest.approx(trained.history[point - 1]["test_accuracy"], abs=1e-6)
        assert (cached.preds != again.preds).sum() <= 2  # only near-ties may round the other way


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage_meta"])
def test_damaged_checkpoint_is_reported_and_retrained(tmp_path, damage):
    trained = load_or_train(tiny_config(), root=tmp_path)
    weights = trained.info.folder / "epoch_01.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "flip":
        raw = bytearray(weights.read_bytes())
        raw[-5] ^= 0xFF
        weights.write_bytes(bytes(raw))
    else:
        (trained.info.folder / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        checkpoints.load_checkpoint(trained.info.folder)
    again = load_or_train(tiny_config(), root=tmp_path)
    assert again.trained_now
    assert again.notice and "damaged" in again.notice
    assert checkpoints.load_checkpoint(again.info.folder) is not None


def test_unfinished_folder_is_not_listed_and_is_retrained(tmp_path):
    trained = load_or_train(tiny_config(), root=tmp_path)
    (trained.info.folder / "meta.json").unlink()  # as if the trainer died before finishing
    assert checkpoints.list_checkpoints(tmp_path) == []
    assert load_or_train(tiny_config(), root=tmp_path).trained_now


def test_same_seed_same_weights(tmp_path):
    # On a fixed thread count: the adaptive chooser may try another count on a busy machine, and
    # a sum over another split of the batch rounds differently (seen once in 13 minutes of tests
    # sharing two cores with another run).
    a = load_or_train(tiny_config(), root=tmp_path / "a", adaptive_threads=False).model
    b = load_or_train(tiny_config(), root=tmp_path / "b", adaptive_threads=False).model
    c = load_or_train(tiny_config(seed=1), root=tmp_path / "c", adaptive_threads=False).model
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.fc2.weight, c.fc2.weight)


def test_training_is_reproducible_while_another_thread_draws_random_numbers():
    """A server's sessions draw from torch's global generator (noise for maps, a page building a
    model) while the trainer starts: the weights must not depend on it."""
    import threading

    config, data = tiny_config(), load_mnist()
    alone, _ = train(config, data, torch.device("cpu"), adaptive_threads=False)
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            torch.manual_seed(99)
            torch.rand(100)

    other = threading.Thread(target=draw)
    other.start()
    try:
        busy, _ = train(config, data, torch.device("cpu"), adaptive_threads=False)
    finally:
        stop.set()
        other.join()
    for (name, a), b in zip(alone.state_dict().items(), busy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_two_processes_train_one_checkpoint(tmp_path):
    script = (
        "import json, sys; from core.train import load_or_train; from tests.conftest import tiny_config; "
        f"t = load_or_train(tiny_config(), root=__import__('pathlib').Path({str(tmp_path)!r})); "
        "print(json.dumps({'key': t.info.key, 'trained': t.trained_now}))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0].decode().strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert results[0]["key"] == results[1]["key"]
    assert sorted(r["trained"] for r in results) == [False, True]
    assert [f.name for f in (tmp_path / "models").iterdir() if f.is_dir()] == [results[0]["key"]]
    assert not list((tmp_path / "models").rglob("*.tmp"))


def test_progress_callback_reports_batches():
    reports = []
    _model, history = train(tiny_config(epochs=2, batch_size=10), load_mnist(), torch.device("cpu"), reports.append)
    assert [(r.epoch, r.batch) for r in reports] == [(1, 100), (1, 200), (2, 100), (2, 200)]
    assert reports[-1].fraction == 1.0
    assert reports[0].test_accuracy is None and reports[2].test_accuracy == history[0]["test_accuracy"]


def test_cli_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    assert main(["--dry-run", "--recipe", "reference"]) == 0
    out = capsys.readouterr().out
    assert "16,614" in out and "test accuracy" in out and "checkpoint:" in out
    assert main(["--dry-run", "--recipe", "reference"]) == 0
    assert "loaded from the cache" in capsys.readouterr().out


def test_cli_rejects_unknown_device(capsys):
    with pytest.raises(SystemExit):
        main(["--device", "tpu"])


def test_shuffled_labels_learn_nothing_about_digits(tmp_path):
    """Permuted labels stay near chance on the test set; the check's network is tested and
    saved after its last epoch only."""
    from core.config import recipe

    config = recipe("default", train_limit=5000, epochs=2)  # enough to learn digits in a second or two
    shuffled = load_or_train(config.replace(shuffle_labels=True), root=tmp_path)
    normal = load_or_train(config, root=tmp_path)
    assert shuffled.info.key != normal.info.key
    assert shuffled.info.test_accuracy < 0.2 and normal.info.test_accuracy > 0.8
    assert "shuffled labels" in shuffled.info.label
    assert [r["test_accuracy"] is None for r in shuffled.history] == [True] * (config.points - 1) + [False]
    last = [checkpoints.epoch_file(config.points)]  # the default recipe's points: 2 epochs saved twice each
    assert sorted(p.name for p in shuffled.info.folder.glob("epoch_*.safetensors")) == last
    assert 0.0 <= shuffled.info.fit_accuracy <= 1.0 and normal.info.fit_accuracy is None


@pytest.mark.slow
def test_shuffled_label_network_memorises_its_labels(model_cache):
    """The data-randomisation check's network fits its shuffled labels (recorded in meta.json,
    and the same when re-counted by hand), reads the test set at chance, and is not constant."""
    from core.config import MIN_FIT, recipe, shuffled_labels_config
    from core.train import shuffled_label_network, training_labels

    network = shuffled_label_network(recipe("default"), root=model_cache)
    config = shuffled_labels_config(recipe("default"))
    trained = load_or_train(config, root=model_cache)  # from the cache now
    assert not trained.trained_now and network.model is not None and not network.missing
    data = load_mnist()
    labels = training_labels(config, data)
    assert len(labels) == config.train_limit and not torch.equal(labels, torch.from_numpy(data.train.labels[:2000]))
    preds = predict_logits(network.model, to_tensor(data.train.images[: config.train_limit])).argmax(1)
    by_hand = (preds == labels).float().mean().item()
    assert trained.info.fit_accuracy == pytest.approx(by_hand) and by_hand >= MIN_FIT
    assert trained.info.test_accuracy < 0.2
    assert len(preds.unique()) == 10  # not a constant output
    assert f"{by_hand:.0%} of its shuffled labels" in network.message


def test_a_shuffled_label_network_that_did_not_fit_is_refused(tmp_path, monkeypatch):
    from core import train as train_module
    from core.config import SHUFFLED_LABELS, recipe

    config = recipe("reference")
    missing = train_module.shuffled_label_network(config, root=tmp_path, train_if_missing=False)
    assert missing.missing and missing.model is None and "not trained yet" in missing.message
    # One epoch on 300 digits cannot memorise 300 random labels.
    monkeypatch.setattr(
        train_module,
        "shuffled_labels_config",
        lambda c: SHUFFLED_LABELS.replace(seed=c.seed, epochs=1, train_limit=300),
    )
    refused = train_module.shuffled_label_network(config, root=tmp_path)
    assert refused.model is None and not refused.missing
    assert "did not memorise its labels" in refused.message and "at least 70%" in refused.message


def test_save_points_split_each_epoch_into_equal_shares():
    config = TrainConfig(saves_per_epoch=4)
    assert config.save_batches(10) == [3, 5, 8, 10]  # 2.5, 5, 7.5, 10 rounded half up
    assert config.save_batches(4) == [1, 2, 3, 4]
    assert TrainConfig(saves_per_epoch=2).save_batches(3) == [2, 3]
    assert TrainConfig().save_batches(469) == [469]
    with pytest.raises(ValueError, match="cannot be saved 4 times"):
        config.save_batches(3)
    for bad in (0, 11, 1.5):
        with pytest.raises(ValueError, match="saves_per_epoch must be a whole number from 1 to 10"):
            TrainConfig(saves_per_epoch=bad)
    assert config.replace(epochs=2).points == 8
    assert [config.point_name(p) for p in (1, 2, 4, 5)] == ["epoch 0.25", "epoch 0.5", "epoch 1", "epoch 1.25"]
    assert TrainConfig().point_name(2) == "epoch 2"
    with pytest.raises(ValueError, match="make 40 saved points; at most 30"):
        TrainConfig(epochs=4, saves_per_epoch=10)
    assert TrainConfig(epochs=60).points == 60  # saved once an epoch: no cap (the shuffled-label network)


def test_saving_more_often_changes_nothing_but_what_is_kept(tmp_path):
    """The same training saved twice an epoch: its whole-epoch points hold exactly the weights of
    the run saved once an epoch, and the half-epoch points are the weights half way."""
    data = load_mnist()
    saved = {}
    once = tiny_config(epochs=2)
    twice = once.replace(saves_per_epoch=2)
    model_once, history_once = train(once, data, torch.device("cpu"), adaptive_threads=False)

    def keep(point, model, record, test_logits):
        saved[point] = {k: v.clone() for k, v in model.state_dict().items()}

    _, history_twice = train(twice, data, torch.device("cpu"), on_epoch=keep, adaptive_threads=False)
    assert sorted(saved) == [1, 2, 3, 4]
    assert [r["epoch"] for r in history_twice] == [0.5, 1.0, 1.5, 2.0]
    for a, b in zip(model_once.state_dict().values(), saved[4].values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(saved[1]["fc2.weight"], saved[2]["fc2.weight"])
    # The whole-epoch test results agree; the half epochs' losses average to the epoch's.
    assert history_twice[1]["test_accuracy"] == history_once[0]["test_accuracy"]
    assert history_twice[3]["test_loss"] == pytest.approx(history_once[1]["test_loss"])
    batches = -(-2000 // once.batch_size)  # 20 batches: halves of 10
    halves = (history_twice[0]["train_loss"] + history_twice[1]["train_loss"]) / 2
    assert halves == pytest.approx(history_once[0]["train_loss"], rel=1e-5) and batches == 20


def test_a_model_saved_more_often_is_cached_with_its_points(tmp_path):
    config = tiny_config(saves_per_epoch=3)
    trained = load_or_train(config, root=tmp_path)
    assert trained.info.epochs_done == 3 and trained.info.config.saves_per_epoch == 3
    assert "1 epoch saved 3x each" in trained.info.label
    assert [round(r["epoch"], 3) for r in trained.history] == [0.333, 0.667, 1.0]
    middle = checkpoints.load_checkpoint(trained.info.folder, 2)
    assert not torch.equal(middle.fc2.weight, trained.model.fc2.weight)
    # Saving more often is part of the key; saving once an epoch keeps the keys models had before.
    fingerprint = load_mnist().fingerprint
    assert checkpoints.model_key(config, fingerprint) != checkpoints.model_key(tiny_config(), fingerprint)
