"""Computed runs: a named dataset-wide computation kept beside its checkpoint, verified on reload.

FiftyOne Brain's runs are the model. A run is one file in a model's folder (the folder's name
is the model key), named after its kind, the saved point, the split and the data's
fingerprint, and labelled inside with everything its numbers depend on. Reading checks the
labels, then the kind's ``decode`` checks the arrays and returns None for anything it does not
expect; a file that is missing, damaged or labelled otherwise is computed again and kept
atomically. A cache that cannot be written (a read-only share a teacher prepared, a full disk)
still serves: the result is returned, only not kept, with one log line per folder.

Each index (evaluation, activation index, 2-D map, TracIn bank, flip summary, scorecard) is its
maths plus a declaration: a :class:`Run` naming it, and ``encode``/``decode`` between its result
and tensors (or JSON for ``.json`` runs). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from core import checkpoints

T = TypeVar("T")
SPLITS = ("train", "test")
TENSORS, JSON = ".safetensors", ".json"


@dataclass(frozen=True)
class Point:
    """One saved point's weights over one split of one data set: what every run of it shares."""

    folder: Path  # the model's folder (its name is the model key)
    epoch: int  # the saved point whose weights compute the run
    split: str | None  # "train" or "test"; None for a run over a sample of its own (the scorecard)
    data: str  # the data set's fingerprint (core.data.Mnist.fingerprint)

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}: use 'train' or 'test'")


@dataclass(frozen=True)
class Run:
    """Where one computation of a :class:`Point` is kept, and what it is labelled with.

    The file is ``KIND_epochNN[_DETAIL...][_SPLIT]_<16 hex of the data>.EXT`` in the point's
    folder; its labels are the model key (the folder's name), the epoch, the split (when it has
    one), the data's full fingerprint and ``details`` (e.g. the digits counted, a method, a basis).
    """

    point: Point
    kind: str  # e.g. "activation_index"; with ``name_details``, what the file name starts with
    details: tuple[tuple[str, str], ...] = ()  # more labels: (name, value) pairs
    name_details: tuple[str, ...] = ()  # what the file name says between the epoch and the split
    suffix: str = TENSORS

    def __post_init__(self) -> None:
        for part in (self.kind, *self.name_details):
            # Lowercase letters, digits and "_": a name part can never reach outside the folder.
            if not (part and part.isascii() and part.replace("_", "a").isalnum() and part == part.lower()):
                raise ValueError(f"{part!r} must be lowercase ASCII letters, digits and '_'")
        if self.suffix not in (TENSORS, JSON):
            raise ValueError(f"a run is kept as {TENSORS} or {JSON}, not {self.suffix!r}")

    @property
    def name(self) -> str:
        at = self.point
        split = () if at.split is None else (at.split,)
        parts = (self.kind, f"epoch{at.epoch:02d}", *self.name_details, *split, at.data[:16])
        return "_".join(parts) + self.suffix

    @property
    def path(self) -> Path:
        return self.point.folder / self.name

    @property
    def labels(self) -> dict[str, str]:
        at = self.point
        split = {} if at.split is None else {"split": at.split}
        return {"key": at.folder.name, "epoch": str(at.epoch), **split, "data": at.data, **dict(self.details)}

    def is_kept(self) -> bool:
        """Whether the file exists (it is verified only when read)."""
        return self.path.is_file()

    def read(self, decode: Callable[[Any], T | None]) -> T | None:
        """The kept result, or None when it is missing, unreadable, damaged, labelled otherwise,
        or not what ``decode`` expects (tensors by name, or the JSON value)."""
        if not self.path.is_file():
            return None
        try:
            data = self.path.read_bytes()
            if self.suffix == JSON:
                found = json.loads(data)
                if isinstance(found, dict) and set(found) == {"labels", "value"}:
                    if found["labels"] != self.labels:
                        return None
                    found = found["value"]
                # else a file from before runs were labelled inside: the name holds its labels
                return decode(found)
            if tensor_labels(data) != self.labels:
                return None
            return decode(load_safetensors(data))
        except (OSError, SafetensorError, ValueError, KeyError, TypeError):
            return None  # damaged, or written by another version: computed again

    def keep(self, encoded: Any) -> bool:
        """Keep an encoded result (tensors by name, or a JSON value) atomically under its labels;
        False where the cache cannot be written (the caller still has its result)."""
        if self.suffix == JSON:
            data = json.dumps({"labels": self.labels, "value": encoded}, indent=2).encode()
        else:
            data = save_safetensors(encoded, metadata=self.labels)
        return keep(self.path, data)

    def get(self, compute: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T | None]) -> T:
        """The kept result if it verifies, else ``compute()``'s, then kept."""
        found = self.read(decode)
        if found is not None:
            return found
        result = compute()
        self.keep(encode(result))
        return result


def tensor_labels(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header (8-byte length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__") or {}


def same_shapes(tensors: dict[str, torch.Tensor], expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> bool:
    """Whether ``tensors`` holds exactly the expected names, each with its shape and dtype."""
    return set(tensors) == set(expected) and all(
        (tuple(tensors[name].shape), tensors[name].dtype) == want for name, want in expected.items()
    )


_UNKEPT: set[Path] = set()  # folders already reported as not writable (one log line each)


def keep(path: Path, data: bytes) -> bool:
    """Write a computed artefact atomically; where the cache cannot be written (a read-only
    share, a full disk) say so once per folder and return False: it is recomputed next time."""
    try:
        checkpoints.atomic_write(path, data)
        return True
    except OSError as err:
        if path.parent not in _UNKEPT:
            _UNKEPT.add(path.parent)
            logging.getLogger(__name__).warning("not caching in %s (%s): results are recomputed", path.parent, err)
        return False
