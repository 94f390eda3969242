"""The on-disk model cache: model references, checksums, atomic writes and meta.json."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from core import checkpoints
from core.checkpoints import CheckpointError, ModelRef
from core.config import RECIPES
from core.data import load_mnist
from core.evaluate import evaluation_run
from core.model import MnistCNN
from core.runs import Point
from core.train import load_or_train
from tests.conftest import tiny_config

KEY = "0123456789abcdef"


# ---- ModelRef ----------------------------------------------------------------------------


def test_model_ref_text_form():
    assert str(ModelRef(KEY)) == KEY
    assert str(ModelRef(KEY, 3)) == f"{KEY}@3"
    assert str(ModelRef(KEY, 12)) == f"{KEY}@12"
    assert ModelRef(KEY, 3).last() == ModelRef(KEY)


@pytest.mark.parametrize("ref", [ModelRef(KEY), ModelRef(KEY, 1), ModelRef(KEY, 25)])
def test_model_ref_parse_round_trips(ref):
    assert ModelRef.parse(str(ref)) == ref


def test_model_ref_parse_is_lenient_about_case_and_spaces():
    assert ModelRef.parse(f"  {KEY.upper()}@2\n") == ModelRef(KEY, 2)
    assert ModelRef.parse(f"{KEY}@007") == ModelRef(KEY, 7)


@pytest.mark.parametrize(
    "key",
    [
        "",
        KEY[:-1],  # 15 characters
        KEY + "0",  # 17 characters
        "0123456789abcdeg",  # not hexadecimal
        KEY.upper(),  # the constructor takes the canonical lower-case form only
        " " + KEY[1:],
    ],
)
def test_model_ref_rejects_bad_keys(key):
    with pytest.raises(ValueError, match="is not a model key"):
        ModelRef(key)


@pytest.mark.parametrize("epoch", [0, -1, True, False])
def test_model_ref_rejects_bad_epochs(epoch):
    with pytest.raises(ValueError, match="not a positive whole number"):
        ModelRef(KEY, epoch)


@pytest.mark.parametrize("epoch", [1.5, 2.0, "2"])
def test_model_ref_rejects_epochs_that_are_not_whole_numbers(epoch):
    with pytest.raises(ValueError, match="not a positive whole number"):
        ModelRef(KEY, epoch)


@pytest.mark.parametrize(
    "text",
    [
        f"{KEY}@",
        f"{KEY}@x",
        f"{KEY}@-1",
        f"{KEY}@1.5",
        f"{KEY}@ 2",
        f"{KEY}@0",
        f"{KEY}@1@2",
        "@3",
        "not-a-key",
        KEY[:8],
        "",
    ],
)
def test_model_ref_parse_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        ModelRef.parse(text)


def test_model_ref_is_hashable_and_frozen():
    assert len({ModelRef(KEY), ModelRef(KEY), ModelRef(KEY, 1)}) == 2
    with pytest.raises(AttributeError):
        ModelRef(KEY).epoch = 2  # type: ignore[misc]


# ---- weights and checksums ---------------------------------------------------------------


def test_weights_round_trip_with_checksum(tmp_path):
    torch.manual_seed(0)
    model = MnistCNN()
    sha = checkpoints.save_weights(tmp_path / "w.safetensors", model)
    assert len(sha) == 64
    loaded = checkpoints.load_weights(tmp_path / "w.safetensors", sha)
    assert not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("checksum", [None, ""])
def test_load_weights_refuses_a_file_without_a_checksum(tmp_path, checksum):
    path = tmp_path / "w.safetensors"
    checkpoints.save_weights(path, MnistCNN())
    with pytest.raises(CheckpointError, match="no checksum"):
        checkpoints.load_weights(path, checksum)


def test_load_weights_refuses_a_wrong_checksum_and_a_missing_file(tmp_path):
    path = tmp_path / "w.safetensors"
    checkpoints.save_weights(path, MnistCNN())
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        checkpoints.load_weights(path, "0" * 64)
    with pytest.raises(CheckpointError, match="cannot be read"):
        checkpoints.load_weights(tmp_path / "absent.safetensors", "0" * 64)


def _drop_checksum(folder: Path, whole_table: bool) -> None:
    meta = json.loads((folder / checkpoints.META).read_text())
    if whole_table:
        del meta["sha256"]
    else:
        del meta["sha256"][checkpoints.epoch_file(meta["epochs_done"])]
    (folder / checkpoints.META).write_text(json.dumps(meta))


@pytest.mark.parametrize("whole_table", [False, True], ids=["entry", "table"])
def test_checkpoint_without_a_recorded_checksum_is_refused_and_retrained(tmp_path, whole_table):
    trained = load_or_train(tiny_config(), root=tmp_path)
    folder = trained.info.folder
    _drop_checksum(folder, whole_table)
    with pytest.raises(CheckpointError, match="no checksum"):
        checkpoints.load_checkpoint(folder)

    again = load_or_train(tiny_config(), root=tmp_path)
    assert again.trained_now
    assert again.notice and "no checksum" in again.notice
    assert again.info.folder == folder
    # The retrained folder records every checksum again, and loads.
    meta = json.loads((folder / checkpoints.META).read_text())
    assert set(meta["sha256"]) == {checkpoints.epoch_file(1)}
    assert checkpoints.load_checkpoint(folder) is not None


def test_only_the_refused_epoch_is_unloadable(tmp_path):
    trained = load_or_train(tiny_config(epochs=2), root=tmp_path)
    folder = trained.info.folder
    meta = json.loads((folder / checkpoints.META).read_text())
    del meta["sha256"][checkpoints.epoch_file(1)]
    (folder / checkpoints.META).write_text(json.dumps(meta))
    assert checkpoints.load_checkpoint(folder, epoch=2) is not None
    with pytest.raises(CheckpointError, match="no checksum"):
        checkpoints.load_checkpoint(folder, epoch=1)


# ---- atomic writes -----------------------------------------------------------------------


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "sub" / "file.bin"
    checkpoints.atomic_write(target, b"payload")

    assert target.read_bytes() == b"payload"
    assert events == [("fsync", "file"), ("replace", target), ("fsync", "dir")]
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]  # no temporary left behind


def test_atomic_write_calls_fsync_folder_with_the_parent(tmp_path, monkeypatch):
    folders = []
    monkeypatch.setattr(checkpoints, "fsync_folder", folders.append)
    checkpoints.atomic_write(tmp_path / "a.json", b"{}")
    checkpoints.write_json(tmp_path / "deeper" / "b.json", [1])
    assert folders == [tmp_path, tmp_path / "deeper"]


def test_fsync_folder_opens_the_folder_itself(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.fstat(fd).st_ino)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    checkpoints.fsync_folder(tmp_path)
    assert synced == [tmp_path.stat().st_ino]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    checkpoints.atomic_write(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        checkpoints.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_training_writes_every_file_through_atomic_write(tmp_path, monkeypatch):
    written = []
    real = checkpoints.atomic_write

    def spy(path, data):
        written.append(path.name)
        return real(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write", spy)
    load_or_train(tiny_config(epochs=2), root=tmp_path)
    # meta last; after each epoch its test evaluation, then, but for the last, what is servable so
    # far (removed with meta written): a page that sees an epoch finds its evaluation too
    evaluation = [_evaluation_name(epoch, "test", load_mnist().fingerprint) for epoch in (1, 2)]
    assert written == [
        "epoch_01.safetensors",
        evaluation[0],
        "provisional.json",
        "epoch_02.safetensors",
        evaluation[1],
        "history.json",
        "meta.json",
    ]
    assert not (
        tmp_path
        / "models"
        / checkpoints.model_key(tiny_config(epochs=2), load_mnist().fingerprint)
        / checkpoints.PROVISIONAL
    ).exists()


# ---- meta.json ---------------------------------------------------------------------------


def test_info_reads_meta_json(tmp_path):
    trained = load_or_train(tiny_config(), root=tmp_path)
    data = load_mnist()
    info = checkpoints.read_info(trained.info.folder)
    assert info == trained.info
    assert info.data_fingerprint == data.fingerprint
    assert info.data_source == data.source
    assert info.config == tiny_config()
    assert info.key == checkpoints.model_key(tiny_config(), data.fingerprint) == trained.info.folder.name
    assert info.epochs_done == 1
    assert "reference · 1 epoch · seed 0 ·" in info.label


def test_info_takes_the_fingerprint_from_meta_json(tmp_path):
    trained = load_or_train(tiny_config(), root=tmp_path)
    meta_path = trained.info.folder / checkpoints.META
    meta = json.loads(meta_path.read_text())
    meta["data_fingerprint"] = "f" * 64
    meta_path.write_text(json.dumps(meta))
    assert checkpoints.read_info(trained.info.folder).data_fingerprint == "f" * 64
    del meta["data_fingerprint"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing or malformed field"):
        checkpoints.read_info(trained.info.folder)


def test_list_checkpoints_skips_unfinished_and_unreadable_folders(tmp_path):
    assert checkpoints.list_checkpoints(tmp_path) == []
    good = load_or_train(tiny_config(), root=tmp_path)
    other = load_or_train(tiny_config(seed=1), root=tmp_path)
    (checkpoints.models_root(tmp_path) / "unfinished").mkdir()
    broken = checkpoints.models_root(tmp_path) / "broken"
    broken.mkdir()
    (broken / checkpoints.META).write_text("{}")
    assert {i.key for i in checkpoints.list_checkpoints(tmp_path)} == {good.info.key, other.info.key}


# ---- names -------------------------------------------------------------------------------


def test_evaluation_file_names_differ_by_epoch_split_and_data():
    fp = "a" * 64
    names = {
        _evaluation_name(1, "test", fp),
        _evaluation_name(2, "test", fp),
        _evaluation_name(1, "train", fp),
        _evaluation_name(1, "test", "b" * 64),
    }
    assert len(names) == 4
    assert all(n.endswith(".safetensors") and "/" not in n for n in names)
    with pytest.raises(ValueError, match="unknown split"):
        _evaluation_name(1, "validation", fp)


def test_model_key_depends_on_the_architecture(monkeypatch):
    fp = load_mnist().fingerprint
    base = checkpoints.model_key(tiny_config(), fp)
    assert len(base) == checkpoints.KEY_LENGTH and ModelRef(base).key == base
    monkeypatch.setattr(checkpoints, "architecture_signature", lambda: "something else")
    assert checkpoints.model_key(tiny_config(), fp) != base


HOLD_LOCK = (
    "from filelock import FileLock; lock = FileLock({lock!r}); lock.acquire(); "
    "print('held', flush=True); __import__('time').sleep(60)"
)


def test_evict_least_recently_used_beyond_the_cap_but_never_kept_or_locked(tmp_path):
    import subprocess
    import sys
    import time

    from core.train import load_cached, load_or_train

    keys = [load_or_train(tiny_config(seed=70 + i), root=tmp_path).info.key for i in range(4)]
    base = time.time() - 100  # in the past: a load now is the most recent use
    for age, key in enumerate(keys):  # keys[0] used longest ago ... keys[3] most recently
        os.utime(checkpoints.models_root(tmp_path) / key / checkpoints.LAST_USED, (base + age, base + age))
    lock = str(checkpoints.models_root(tmp_path) / keys[1]) + ".lock"
    holder = subprocess.Popen(  # another process holds keys[1]'s lock (training or loading it)
        [sys.executable, "-c", HOLD_LOCK.format(lock=lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        removed = checkpoints.evict(3, keep={keys[0]}, root=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert removed == [keys[2]]  # keys[0] kept, keys[1] locked: the next least recent goes
    left = {info.key for info in checkpoints.list_checkpoints(tmp_path)}
    assert left == {keys[0], keys[1], keys[3]}
    load_cached(keys[1], root=tmp_path)  # using a model makes it the most recent
    assert checkpoints.evict(2, keep={keys[0]}, root=tmp_path) == [keys[3]]
    assert checkpoints.evict(2, keep=set(), root=tmp_path) == []  # within the cap


def test_fields_added_later_keep_old_keys():
    """A field added to TrainConfig is left out of the key at its default: links and caches from
    before it existed still name the same models (keys computed before flip_labels existed)."""
    fingerprint = "f" * 64
    once = RECIPES["default"].replace(saves_per_epoch=1)  # the default recipe before issue 29
    assert checkpoints.model_key(once, fingerprint) == "3282c7abb4e43986"
    assert checkpoints.model_key(RECIPES["reference"], fingerprint) == "67cd42301b39495b"
    assert checkpoints.model_key(once.replace(flip_labels=0.01), fingerprint) != "3282c7abb4e43986"


def test_the_default_recipe_saves_twice_an_epoch_under_a_key_of_its_own():
    """Issue 29: six saved points from epoch 0.5 to 3; its key is new (the old default's folder,
    where it exists, keeps opening under its own key)."""
    fingerprint = "f" * 64
    default = RECIPES["default"]
    assert default.saves_per_epoch == 2 and default.points == 6
    assert [default.point_name(p) for p in (1, 2, 6)] == ["epoch 0.5", "epoch 1", "epoch 3"]
    assert checkpoints.model_key(default, fingerprint) not in ("3282c7abb4e43986", "")


def _evaluation_name(epoch: int, split: str, fingerprint: str) -> str:
    return evaluation_run(Point(Path("key"), epoch, split, fingerprint)).name
