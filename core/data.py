"""MNIST from three sources, all yielding the same arrays.

- ``"bundled"`` (the default): the four IDX files shipped inside this package, verified
  against their published MD5 checksums the first time they are read.
- a folder: the four IDX files, gzip or not, under the names the original distribution
  and torchvision use (for example another MNIST-format data set such as Fashion-MNIST),
  with an optional ``classes.txt`` naming the ten classes, one a line (else they are digits),
  and, in lines starting with ``#``, what one image is called and the data set's name
  (``# noun: item``, ``# noun: mouse, mice``, ``# name: Fashion-MNIST``).
- ``"hf:NAME"``: a Hugging Face data set through ``datasets.load_dataset`` (needs the
  network unless NAME is a local folder); ``datasets`` is only imported on this path
  because importing it costs about a second.

Nothing here downloads anything unless the user asks for a Hugging Face source.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.resources
import math
import threading
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

IMAGE_SIZE = 28  # MNIST images are 28x28 pixels
NUM_CLASSES = 10
DIGIT_NAMES = tuple(str(d) for d in range(NUM_CLASSES))
BUNDLED = "bundled"
HF_PREFIX = "hf:"

# The IDX file names per split, as the original distribution and torchvision name them.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Published MD5 checksums of the decompressed canonical files.
BUNDLED_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
IDX_UBYTE = 0x08  # the IDX type code for unsigned bytes, the only one MNIST uses
CLASSES_FILE = "classes.txt"  # in a folder: one class name a line, label 0 first
MAX_CLASS_NAME = 40  # characters; longer names would not fit an axis
MAX_CLASSES_BYTES = 64 * 1024  # the most of a classes.txt ever read


class DataError(ValueError):
    """A data source is missing, malformed or inconsistent; the message says which file."""


@dataclass(frozen=True)
class Naming:
    """What every sentence calls one image of a data set, several, and the data set itself:
    "digit", "digits", "MNIST"; "item", "items", "Fashion-MNIST"."""

    noun: str
    plural: str
    name: str

    @property
    def a(self) -> str:
        """The noun with its article: "a digit", "an image"."""
        vowel = self.noun[0].lower() in "aeiou" and not self.noun.lower().startswith(("uni", "use", "usu", "eu", "one"))
        return f"{'an' if vowel else 'a'} {self.noun}"

    def count(self, n: int) -> str:
        """ "1 digit", "10,000 digits"."""
        return f"{n:,} {self.noun if n == 1 else self.plural}"

    @classmethod
    def of(cls, classes: tuple[str, ...], name: str, noun: str | None = None, plural: str | None = None) -> Naming:
        """A data set's naming: the noun given, else "digit" for the digits and "image" otherwise."""
        noun = noun or ("digit" if classes == DIGIT_NAMES else "image")
        return cls(noun, plural or plural_of(noun), name)


def plural_of(noun: str) -> str:
    """English's regular plural: item → items, glass → glasses, body → bodies."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return f"{noun}es"
    if noun.endswith("y") and noun[-2:-1].lower() not in "aeiou":
        return f"{noun[:-1]}ies"
    return f"{noun}s"


MNIST_WORDS = Naming.of(DIGIT_NAMES, "MNIST")  # what sentences call MNIST's images unless told otherwise


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, 28, 28), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Mnist:
    """Both splits of an MNIST-format data set, with where it came from."""

    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    fingerprint: str  # sha256 of all arrays: part of every model's cache key
    naming: Naming | None = None  # what a classes.txt gave; None: from the classes and the source

    @property
    def digits(self) -> bool:
        """Whether the classes are the digits 0-9 (else the folder's classes.txt or the Hugging
        Face data set named them otherwise: clothes, letters, ...)."""
        return self.classes == DIGIT_NAMES

    @property
    def words(self) -> Naming:
        """What sentences call one of its images ("digit", "image", a classes.txt's noun) and it."""
        return self.naming or Naming.of(self.classes, source_name(self.source))

    @property
    def name(self) -> str:
        return self.words.name

    def split(self, name: str) -> Split:
        if name not in IDX_FILES:
            raise ValueError(f"unknown split {name!r}: use 'train' or 'test'")
        return self.train if name == "train" else self.test


class MnistDataset(torch.utils.data.Dataset):
    """A ``torch.utils.data.Dataset`` view of a split for code that wants one.

    Items are ``(image, label)`` with image float32 (1, 28, 28) in [0, 1]. The trainer does
    not use this: it indexes whole-dataset tensors in batches, which is far faster.
    """

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.split.images[i]).float().div_(255.0).unsqueeze(0)
        return image, int(self.split.labels[i])


def source_name(source: str) -> str:
    """A data source's short name for people: "MNIST", the Hugging Face name, or a folder's: the
    ``# name:`` its classes.txt gives, else the folder's own name."""
    if source == BUNDLED:
        return "MNIST"
    if source.startswith(HF_PREFIX):
        return source[len(HF_PREFIX) :]
    try:
        named = read_classes(Path(source) / CLASSES_FILE)[1].get("name")
    except DataError:
        named = None  # said where the data set is opened; a name is no place for it
    return named or Path(source).name or source


def one_of(label: int, classes: tuple[str, ...]) -> str:
    """How a text calls one member of a class: "a 4" for a digit, "labelled Coat" otherwise."""
    return f"a {classes[label]}" if classes == DIGIT_NAMES else f"labelled {classes[label]}"


def some_of(label: int, classes: tuple[str, ...], words: Naming | None = None) -> str:
    """How a text calls several members of a class: "4s" for digits, "images of Coat" otherwise
    ("items of Coat" with ``words`` naming one an item; by default as ``Naming.of(classes)``)."""
    if classes == DIGIT_NAMES:
        return f"{classes[label]}s"
    return f"{(words or Naming.of(classes, '')).plural} of {classes[label]}"


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1], the model's input."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).float().div_(255.0)


def load_mnist(source: str | Path = BUNDLED, max_bytes: int | None = None) -> Mnist:
    """Load MNIST from ``"bundled"``, a folder of IDX files, or ``"hf:NAME"``. ``max_bytes``: a
    folder a visitor typed, each of its files read in bounded chunks and refused past that size
    (``TYPED_MAX_BYTES``); the host's own sources are read whole.

    Results are memoised per process, so pages and scripts can call this freely. Threads asking
    for the same source at once wait for one load (``lru_cache`` alone would load it once per
    thread: measured at a first start, the server's start-up thread and the first page each
    read MNIST, 0.5 s of the GIL twice).
    Raises :class:`DataError` naming the file and the problem when the data is bad.
    """
    source = str(source)
    with _locks_lock:
        lock = _source_locks.setdefault(source, threading.Lock())
    with lock:
        if source == BUNDLED:
            return _load_bundled()
        if source.startswith(HF_PREFIX):
            return _load_hugging_face(source[len(HF_PREFIX) :])
        folder = str(Path(source).expanduser().resolve())
        with _locks_lock:
            kept = _folders.get(folder)
        if kept is not None:  # the first read checked the limit; the same files need no second
            return kept
        data = _load_folder(folder, max_bytes)  # under this source's lock: once at a time
        with _locks_lock:  # other folders' threads change the dict too
            _folders[folder] = data
            while len(_folders) > MAX_FOLDERS:
                del _folders[next(iter(_folders))]
        return data


_locks_lock = threading.Lock()
_source_locks: dict[str, threading.Lock] = {}  # one per source string asked for: a few
_folders: dict[str, Mnist] = {}  # folders read, oldest first (changed under _locks_lock)
MAX_FOLDERS = 4  # folders kept in memory at once (~55 MB each for MNIST's size)


@lru_cache(maxsize=1)
def _load_bundled() -> Mnist:
    root = importlib.resources.files("core") / "mnist_files"
    with importlib.resources.as_file(root) as folder:
        return _read_idx_folder(Path(folder), BUNDLED, expected_md5=BUNDLED_MD5)


def _load_folder(folder: str, max_bytes: int | None = None) -> Mnist:
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder. Give a folder holding the four MNIST IDX files.")
    data = _read_idx_folder(path, folder, None, max_bytes)
    classes, settings = read_classes(path / CLASSES_FILE)
    naming = Naming.of(classes, settings.get("name") or path.name, *settings.get("noun", ()))
    return dataclasses.replace(data, classes=classes, naming=naming)


NAMING_SETTINGS = {"noun": 30, "name": MAX_CLASS_NAME}  # a classes.txt's "# key: value" lines, longest value


def read_classes(path: Path) -> tuple[tuple[str, ...], dict]:
    """The class names a folder's ``classes.txt`` gives (one a line, label 0 first; blank lines
    at the end are ignored), or the digits when there is no such file; and its settings, lines
    starting with ``#``: ``# noun: item`` (or ``# noun: mouse, mice``) gives ``{"noun": ("item",)}``,
    ``# name: Fashion-MNIST`` gives ``{"name": "Fashion-MNIST"}``; other ``#`` lines are comments.
    Raises DataError naming the file and what is wrong: not ten names, an empty or over-long
    name, a name twice, an empty or over-long setting."""
    if not path.is_file():
        return DIGIT_NAMES, {}
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CLASSES_BYTES + 1)
        if len(raw) > MAX_CLASSES_BYTES:
            raise DataError(f"{path}: more than {MAX_CLASSES_BYTES:,} bytes; ten class names need far less.")
        lines = raw.decode("utf-8-sig").rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({err}).") from err
    settings: dict = {}
    for line in (line.strip() for line in lines if line.lstrip().startswith("#")):
        key, colon, value = line[1:].partition(":")
        key, value = key.strip().lower(), value.strip()
        if not colon or key not in NAMING_SETTINGS:
            continue  # a comment
        longest = NAMING_SETTINGS[key]
        parts = tuple(part.strip() for part in value.split(",")) if key == "noun" else (value,)
        if not 1 <= len(parts) <= 2 or not all(0 < len(part) <= longest for part in parts):
            wanted = "a noun, or a noun and its plural (# noun: mouse, mice)," if key == "noun" else "a name"
            raise DataError(f"{path}: '# {key}:' needs {wanted} of 1 to {longest} characters, not {value!r}.")
        settings[key] = parts if key == "noun" else value
    names = tuple(line.strip() for line in lines if not line.lstrip().startswith("#"))
    if len(names) != NUM_CLASSES:
        raise DataError(f"{path}: {len(names)} lines, expected {NUM_CLASSES} class names, one a line (label 0 first).")
    for number, name in enumerate(names):
        if not name or len(name) > MAX_CLASS_NAME:
            raise DataError(
                f"{path}: line {number + 1} must name class {number} in 1 to {MAX_CLASS_NAME} characters, not {name!r}."
            )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path}: {', '.join(map(repr, twice))} names more than one class; each name must be unique.")
    return names, settings


def _read_idx_folder(
    folder: Path, source: str, expected_md5: dict[str, str] | None, max_bytes: int | None = None
) -> Mnist:
    splits = {}
    for split, (images_name, labels_name) in IDX_FILES.items():
        images = _read_idx(_find_idx(folder, images_name), 3, expected_md5, max_bytes)
        labels = _read_idx(_find_idx(folder, labels_name), 1, expected_md5, max_bytes)
        splits[split] = _make_split(images, labels, where=f"{folder}/{images_name}")
    return _make_mnist(splits["train"], splits["test"], DIGIT_NAMES, source)


def _find_idx(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{folder / name}: missing. The folder must hold {name} or {name}.gz "
        "(the names the original MNIST distribution and torchvision use)."
    )


def _open_idx(path: Path):
    """The file's bytes as a stream, decompressed as they are read when it is gzip."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _read_stream(path: Path, ndim: int, max_bytes: int) -> bytes:
    """An IDX file's header and data, read in bounded chunks: refused as soon as its header
    promises more than ``max_bytes`` of data, or its data (a gzip inflating) runs past what the
    header promised, so at most the header, ``max_bytes`` and one byte are ever pulled."""
    header_size = 4 + 4 * ndim
    with _open_idx(path) as stream:
        header = stream.read(header_size)
        if len(header) == header_size and header[:3] == bytes([0, 0, IDX_UBYTE]):
            promised = math.prod(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            if promised > max_bytes:
                raise DataError(
                    f"{path}: its header promises {promised:,} bytes of data, more than the {max_bytes:,} this "
                    "server reads from a typed folder. Ask the server's host to open it (--data)."
                )
            chunks, left = [header], promised + 1  # one byte more: padding is named, not read on
            while left > 0 and (chunk := stream.read(min(left, READ_CHUNK))):
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        return header  # too short or not an unsigned-byte IDX: named below


READ_CHUNK = 1 << 20  # bytes a bounded read pulls at a time
TYPED_MAX_BYTES = 1 << 30  # the most data one IDX file of a visitor's typed folder may hold (1 GiB)


def _read_idx(path: Path, ndim: int, expected_md5: dict[str, str] | None, max_bytes: int | None = None) -> np.ndarray:
    """Parse one IDX file (gzip or not) into a uint8 array, checking everything; with
    ``max_bytes``, read in bounded chunks and refused past that (a visitor's typed folder)."""
    try:
        if max_bytes is not None:
            raw = _read_stream(path, ndim, max_bytes)
        else:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: cannot be read or decompressed ({err}).") from err
    if expected_md5 is not None:
        name = path.name.removesuffix(".gz")
        digest = hashlib.md5(raw).hexdigest()
        if digest != expected_md5[name]:
            raise DataError(
                f"{path}: checksum mismatch (MD5 {digest}, expected {expected_md5[name]}). "
                "The bundled file is damaged: reinstall the package."
            )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated, only {len(raw)} bytes (the header alone is {header_size}).")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != ndim:
        raise DataError(
            f"{path}: wrong magic number 0x{raw[:4].hex()}, expected 0x0000080{ndim} "
            f"(an unsigned-byte IDX file with {ndim} dimension{'s' if ndim > 1 else ''})."
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python's integers: numpy's int64 product wraps past 2**63
    if len(raw) - header_size != expected:
        raise DataError(
            f"{path}: truncated or padded, header says {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header_size}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _make_split(images: np.ndarray, labels: np.ndarray, where: str) -> Split:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{where}: wrong image size {tuple(images.shape[1:])}, expected ({IMAGE_SIZE}, {IMAGE_SIZE}).")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels; they must match.")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{where}: labels must lie in 0..{NUM_CLASSES - 1}, found {labels.min()}..{labels.max()}.")
    # A writable copy: frombuffer arrays are read-only, which torch.from_numpy warns about.
    return Split(images=np.array(images, dtype=np.uint8), labels=labels)


def _make_mnist(train: Split, test: Split, classes: tuple[str, ...], source: str) -> Mnist:
    digest = hashlib.sha256()
    for array in (train.images, train.labels, test.images, test.labels):
        digest.update(array.tobytes())
    return Mnist(train=train, test=test, classes=classes, source=source, fingerprint=digest.hexdigest())


@lru_cache(maxsize=4)
def _load_hugging_face(name: str) -> Mnist:
    import datasets

    try:
        dataset = datasets.load_dataset(name)
    except Exception as err:  # datasets raises many types: network, missing, format
        raise DataError(f"Hugging Face data set {name!r} could not be loaded: {err}") from err
    splits = {}
    for split in IDX_FILES:
        if split not in dataset:
            raise DataError(f"Hugging Face data set {name!r} has no {split!r} split (it has {list(dataset)}).")
        part = dataset[split]
        if "image" not in part.column_names or "label" not in part.column_names:
            raise DataError(
                f"Hugging Face data set {name!r}: split {split!r} needs 'image' and 'label' columns, "
                f"it has {part.column_names}."
            )
        images = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in part["image"]])
        labels = np.asarray(part["label"], dtype=np.int64)
        splits[split] = _make_split(images, labels, where=f"{name}[{split}]")
    names = dataset["train"].features["label"]
    classes = tuple(names.names) if hasattr(names, "names") else DIGIT_NAMES
    return _make_mnist(splits["train"], splits["test"], classes, f"{HF_PREFIX}{name}")
