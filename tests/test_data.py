import gzip

import numpy as np
import pytest
from PIL import Image

from core import data
from core.data import DataError, MnistDataset, load_mnist, to_tensor

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_folder(folder, n_train=50, n_test=20, gz=False, images=None):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)) if images is None else images,
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        raw = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def test_bundled_mnist_is_the_real_data():
    mnist = load_mnist()
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.dtype == np.int64
    assert np.bincount(mnist.train.labels).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test.labels).tolist() == TEST_COUNTS
    assert mnist.classes == tuple("0123456789")
    assert mnist.source == "bundled"


@pytest.mark.parametrize("gz", [False, True])
def test_folder_source_plain_or_gzip(tmp_path, gz):
    arrays = write_folder(tmp_path, gz=gz)
    mnist = load_mnist(tmp_path)
    assert np.array_equal(mnist.train.images, arrays["train-images-idx3-ubyte"])
    assert np.array_equal(mnist.test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert mnist.fingerprint != load_mnist().fingerprint


def test_missing_file_is_named(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: missing"):
        load_mnist(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_mnist(tmp_path / "nope")


def test_wrong_magic_number(tmp_path):
    write_folder(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float type
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: wrong magic number 0x00000d01"):
        load_mnist(tmp_path)


def test_truncated_file(tmp_path):
    write_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: truncated"):
        load_mnist(tmp_path)


def test_truncated_header(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="truncated, only 3 bytes"):
        load_mnist(tmp_path)


def test_corrupt_gzip(tmp_path):
    write_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot be read or decompressed"):
        load_mnist(tmp_path)


def test_count_mismatch(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(49)))
    with pytest.raises(DataError, match="50 images but 49 labels"):
        load_mnist(tmp_path)


def test_wrong_image_size(tmp_path):
    write_folder(tmp_path, images=np.zeros((50, 32, 32)))
    with pytest.raises(DataError, match=r"wrong image size \(32, 32\)"):
        load_mnist(tmp_path)


def test_bundled_checksum_is_verified(tmp_path, monkeypatch):
    write_folder(tmp_path)
    wrong = {name: "0" * 32 for name in data.BUNDLED_MD5}
    with pytest.raises(DataError, match="checksum mismatch"):
        data._read_idx_folder(tmp_path, "bundled", expected_md5=wrong)


def test_hugging_face_source_offline(tmp_path, monkeypatch):
    """The hf: path through datasets.load_dataset, on a small parquet data set written here."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rng = np.random.default_rng(1)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list("0123456789"))})
    expected = {}
    for split, n in (("train", 30), ("test", 12)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        part = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(im) for im in images], "label": labels.tolist()}, features=features
        )
        (tmp_path / "data").mkdir(exist_ok=True)
        part.to_parquet(str(tmp_path / "data" / f"{split}-00000-of-00001.parquet"))
        expected[split] = (images, labels)
    mnist = load_mnist(f"hf:{tmp_path}")
    assert np.array_equal(mnist.train.images, expected["train"][0])
    assert np.array_equal(mnist.test.labels, expected["test"][1])
    assert mnist.classes == tuple("0123456789")


def test_hugging_face_missing_dataset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="could not be loaded"):
        load_mnist(f"hf:{tmp_path / 'absent'}")


def test_dataset_wrapper_and_tensor():
    split = load_mnist().test
    image, label = MnistDataset(split)[0]
    assert image.shape == (1, 28, 28) and image.min() >= 0.0 and image.max() <= 1.0
    assert label == 7
    batch = to_tensor(split.images[:5])
    assert batch.shape == (5, 1, 28, 28) and batch.dtype.is_floating_point


def test_a_folder_names_its_classes_in_classes_txt(tmp_path):
    from tests.conftest import FASHION

    write_folder(tmp_path)
    plain = load_mnist(tmp_path)
    assert plain.classes == data.DIGIT_NAMES and plain.digits and plain.name == tmp_path.name
    named = tmp_path / "named"
    named.mkdir()
    write_folder(named)
    (named / "classes.txt").write_text("\ufeff" + "\n".join(f"  {c} " for c in FASHION) + "\n\n")
    clothes = load_mnist(named)
    assert clothes.classes == FASHION and not clothes.digits  # BOM, spaces and trailing blank lines ignored
    assert clothes.fingerprint == plain.fingerprint  # names change no weights: the same models
    assert load_mnist().name == "MNIST" and data.source_name("hf:fashion_mnist") == "fashion_mnist"


def test_a_data_set_is_called_by_its_noun_and_its_name(tmp_path):
    """Every sentence names one image by the data set's noun: "digit" for the digits, "image" for
    other classes, or what classes.txt says; and the data set by its folder or classes.txt's name."""
    from tests.conftest import FASHION

    assert load_mnist().words == data.Naming("digit", "digits", "MNIST")
    write_folder(tmp_path)
    assert load_mnist(tmp_path).words == data.Naming("digit", "digits", tmp_path.name)
    clothes = tmp_path / "clothes"
    clothes.mkdir()
    write_folder(clothes)
    (clothes / "classes.txt").write_text("\n".join(FASHION) + "\n")
    assert load_mnist(clothes).words == data.Naming("image", "images", "clothes")
    assert load_mnist(clothes).name == "clothes"
    named = tmp_path / "named"
    named.mkdir()
    write_folder(named)
    text = "# Zalando's articles\n# noun: item\n#name:  Fashion-MNIST \n" + "\n".join(FASHION) + "\n"
    (named / "classes.txt").write_text(text)
    loaded = load_mnist(named)
    assert loaded.classes == FASHION  # the # lines are not classes
    assert data.source_name(str(named)) == "Fashion-MNIST"  # the model list's name for it
    assert loaded.words == data.Naming("item", "items", "Fashion-MNIST") and loaded.name == "Fashion-MNIST"
    assert loaded.words.a == "an item" and loaded.words.count(1) == "1 item"
    assert loaded.words.count(2500) == "2,500 items"
    irregular = tmp_path / "irregular"
    irregular.mkdir()
    write_folder(irregular)
    (irregular / "classes.txt").write_text("# noun: mouse, mice\n" + "\n".join(FASHION))
    assert load_mnist(irregular).words == data.Naming("mouse", "mice", "irregular")
    assert data.Naming.of(data.DIGIT_NAMES, "MNIST").a == "a digit"
    assert [data.Naming.of(FASHION, "x", noun).a for noun in ("image", "unit", "user", "ox")] == [
        "an image",
        "a unit",
        "a user",
        "an ox",
    ]
    plurals = {"item": "items", "glass": "glasses", "body": "bodies", "toy": "toys", "sketch": "sketches"}
    assert {noun: data.plural_of(noun) for noun in plurals} == plurals


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# noun:\n" + "\n".join("abcdefghij"), "'# noun:' needs a noun"),
        ("# noun: a, b, c\n" + "\n".join("abcdefghij"), "'# noun:' needs a noun"),
        ("# name: " + "x" * 41 + "\n" + "\n".join("abcdefghij"), "'# name:' needs a name of 1 to 40"),
        ("\n".join("abcdefghi"), "9 lines, expected 10 class names"),
        ("a\n\n" + "\n".join("cdefghij"), "line 2 must name class 1"),
        ("\n".join("abcdefghia"), "'a' names more than one class"),
        ("\n".join("abcdefghi") + "\n" + "x" * 41, "line 10 must name class 9 in 1 to 40 characters"),
    ],
)
def test_a_bad_classes_txt_is_named(tmp_path, text, message):
    write_folder(tmp_path)
    (tmp_path / "classes.txt").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_mnist(tmp_path)
    assert "classes.txt" in str(err.value)


def test_threads_asking_for_one_data_set_at_once_load_it_once(monkeypatch, named_folder):
    """The server's start-up thread, the trainer and the first page ask for the data together."""
    import threading
    import time

    reads = []
    real = data._read_idx_folder

    def slow_read(*args, **kwargs):
        reads.append(args[0])
        time.sleep(0.2)  # a real read takes ~0.5 s: long enough for the others to arrive meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "_read_idx_folder", slow_read)
    data._folders.clear()
    results, start = [], threading.Barrier(4)

    def ask():
        start.wait()
        results.append(load_mnist(named_folder))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        data._folders.clear()
    assert len(reads) == 1 and len(results) == 4 and all(r is results[0] for r in results)
