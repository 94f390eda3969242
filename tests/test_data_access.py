"""What a visitor may make a shared server read (core.data_access, issue 31): folders inside the
host's data root only, one sentence for every refusal, typed sources by the listening address,
and files that would cost too much refused before they are read whole."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from core import data
from core.config import ServerSettings, server_settings
from core.data_access import REFUSED, DataAccessError, inside, is_loopback, typed_source, typed_sources
from tests.test_data import idx_bytes, write_folder


@pytest.fixture
def root(tmp_path):
    """A data root with one data set in it, a folder outside it, and links in and out."""
    root = tmp_path / "root"
    (root / "fashion").mkdir(parents=True)
    write_folder(root / "fashion")
    (root / "fashion" / "deeper").mkdir()
    outside = tmp_path / "private"
    outside.mkdir()
    write_folder(outside)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "alias").symlink_to(root / "fashion", target_is_directory=True)
    (root / "notes.txt").write_text("a file, not a folder")
    return root


def test_every_escape_from_the_root_gets_the_same_sentence(root, tmp_path):
    escapes = {
        "traversal": "../private",
        "traversal inside a name": "fashion/../../private",
        "an absolute path elsewhere": str(tmp_path / "private"),
        "the system's": "/etc",
        "a link inside the root that points out": "escape",
        "a path that does not exist": "nowhere",
        "outside and missing": "../nowhere",
        "a file": "notes.txt",
        "a NUL byte": "fash\x00ion",
        "the home folder": "~",
    }
    for why, typed in escapes.items():
        with pytest.raises(DataAccessError) as err:
            inside(root, typed)
        assert str(err.value) == REFUSED, why
    assert inside(root, "fashion") == (root / "fashion").resolve()
    assert inside(root, "fashion/deeper") == (root / "fashion" / "deeper").resolve()
    assert inside(root, str(root / "fashion")) == (root / "fashion").resolve()  # absolute, inside
    assert inside(root, "alias") == (root / "fashion").resolve()  # a link that stays inside
    assert inside(root, ".") == root.resolve()


def test_loopback_is_this_machine_alone():
    for address in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", " LOCALHOST "):
        assert is_loopback(address), address
    for address in (None, "", "0.0.0.0", "::", "192.168.1.20", "example.org"):
        assert not is_loopback(address), address


def test_typed_sources_follow_the_host_and_the_address(root):
    alone, room = "127.0.0.1", "0.0.0.0"
    plain = ServerSettings()
    on_own = typed_sources(plain, alone)
    assert on_own.folders and on_own.root is None and on_own.hugging_face
    shared = typed_sources(plain, room)  # a server on 0.0.0.0 with no root: nothing typed
    assert not shared.folders and not shared.hugging_face and not shared.any
    assert "--data-root" in shared.why and "--typed-hf" in shared.why
    rooted = typed_sources(ServerSettings(data_root=str(root)), room)
    assert rooted.folders and rooted.root == root and not rooted.hugging_face
    assert typed_sources(ServerSettings(typed_hf=True), room).hugging_face
    assert not typed_sources(ServerSettings(typed_hf=False), alone).hugging_face
    off = typed_sources(ServerSettings(typed_data=False, data_root=str(root), typed_hf=True), alone)
    assert not off.any and "off" in off.why
    # What a visitor types, through those rules.
    assert typed_source("fashion", rooted) == str((root / "fashion").resolve())
    with pytest.raises(DataAccessError, match="does not download"):
        typed_source("hf:fashion_mnist", rooted)
    with pytest.raises(DataAccessError, match="does not open folders"):
        typed_source(str(root / "fashion"), shared)
    with pytest.raises(DataAccessError, match=REFUSED):
        typed_source("../private", rooted)
    assert typed_source("hf:fashion_mnist", on_own) == "hf:fashion_mnist"
    assert typed_source(str(root / "fashion"), on_own) == str((root / "fashion").resolve())


def test_the_host_names_the_root_and_the_switch_three_ways(root, tmp_path, monkeypatch):
    for name in ("MNIST_CNN_DATA_ROOT", "MNIST_CNN_TYPED_HF"):
        monkeypatch.delenv(name, raising=False)
    assert server_settings([]).data_root == "" and server_settings([]).typed_hf is None
    config = tmp_path / "config.toml"
    config.write_text(f'[mnist_dashboard]\ndata_root = "{root}"\ntyped_hf = true\n')
    assert server_settings([], config) == ServerSettings(data_root=str(root.resolve()), typed_hf=True)
    monkeypatch.setenv("MNIST_CNN_TYPED_HF", "off")
    monkeypatch.setenv("MNIST_CNN_DATA_ROOT", str(root / "fashion"))
    from_env = server_settings([], config)
    assert from_env.typed_hf is False and from_env.data_root == str((root / "fashion").resolve())
    from_args = server_settings(["--data-root", str(root), "--typed-hf"], config)
    assert from_args.typed_hf is True and from_args.data_root == str(root.resolve())
    with pytest.raises(ValueError, match=r"data root .* is not a folder"):
        server_settings(["--data-root", str(tmp_path / "nowhere")])


class _Counting:
    """A stream that counts the bytes a reader pulls from it."""

    def __init__(self, stream, pulled: list[int]):
        self.stream, self.pulled = stream, pulled

    def read(self, n: int = -1) -> bytes:
        chunk = self.stream.read(n)
        self.pulled.append(len(chunk))
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()


@pytest.fixture
def pulled(monkeypatch) -> list[int]:
    """Every read of an IDX file's (decompressed) bytes, counted."""
    counts: list[int] = []
    real = data._open_idx
    monkeypatch.setattr(data, "_open_idx", lambda path: _Counting(real(path), counts))
    return counts


def _header(count: int) -> bytes:
    return bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (count, 28, 28))


def test_a_header_promising_a_billion_images_is_refused_after_the_header(tmp_path, pulled):
    folder = tmp_path / "huge"
    folder.mkdir()
    write_folder(folder)
    (folder / "train-images-idx3-ubyte").write_bytes(_header(10**9) + bytes(784 * 10))
    with pytest.raises(data.DataError, match=r"promises 784,000,000,000 bytes of data, more than the 1,073,741,824"):
        data.load_mnist(folder, max_bytes=data.TYPED_MAX_BYTES)
    assert sum(pulled) == 16  # the header, nothing more


def test_a_gzip_that_inflates_past_its_header_is_refused_within_the_limit(tmp_path, pulled):
    limit = 100_000
    folder = tmp_path / "bomb"
    folder.mkdir()
    write_folder(folder, gz=True)
    os.remove(folder / "train-images-idx3-ubyte.gz")
    # A header that promises 100 images (78,400 bytes, under the limit), then 50 MB of zeros.
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as out:
        out.write(_header(100))
        for _ in range(50):
            out.write(bytes(1 << 20))
    assert (folder / "train-images-idx3-ubyte.gz").stat().st_size < 200_000  # small on disk
    with pytest.raises(data.DataError, match="truncated or padded"):
        data.load_mnist(folder, max_bytes=limit)
    assert sum(pulled) <= 16 + limit + 1
    pulled.clear()
    # One promising more than the limit is refused at its header, however it is compressed.
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as out:
        out.write(_header(1000) + bytes(784 * 1000))
    with pytest.raises(data.DataError, match="promises 784,000 bytes"):
        data.load_mnist(folder, max_bytes=limit)
    assert sum(pulled) == 16


def test_within_the_limit_a_typed_folder_reads_as_the_host_s_and_the_host_s_is_unlimited(tmp_path, pulled):
    folder = tmp_path / "fine"
    folder.mkdir()
    arrays = write_folder(folder, gz=True)
    limited = data.load_mnist(folder, max_bytes=50 * 784)
    np.testing.assert_array_equal(limited.train.images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(limited.test.labels, arrays["t10k-labels-idx1-ubyte"])
    read = sum(pulled)
    assert data.load_mnist(folder) is limited and sum(pulled) == read  # the host's read: the same, not read again
    data._folders.clear()
    with pytest.raises(data.DataError, match="promises 39,200 bytes"):  # the same folder, a smaller limit
        data.load_mnist(folder, max_bytes=49 * 784)
    other = tmp_path / "other"
    other.mkdir()
    write_folder(other)
    (other / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((50, 28, 28), dtype=np.uint8)) + b"\0")
    with pytest.raises(data.DataError, match="truncated or padded"):  # every check still made
        data.load_mnist(other, max_bytes=data.TYPED_MAX_BYTES)


def test_a_typed_hugging_face_name_is_a_hub_id_never_a_path(tmp_path, monkeypatch):
    """datasets.load_dataset opens a local folder by that name: a typed name that is or could be
    a path is refused with the same sentence as a malformed one."""
    from core.data_access import NOT_A_HUB_ID, forwarded, hub_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "exams").mkdir()
    assert hub_source("fashion_mnist") == "hf:fashion_mnist"
    assert hub_source("zalando-datasets/fashion_mnist") == "hf:zalando-datasets/fashion_mnist"
    for name in ("exams", "/etc", "../x", "a/b/c", "", "~", "a/..", ".hidden", "x" * 200, "c:\\windows"):
        with pytest.raises(DataAccessError) as err:
            hub_source(name)
        assert str(err.value) == NOT_A_HUB_ID, name
    # A proxy's marks: a loopback server behind one serves other machines.
    assert forwarded({"X-Forwarded-For": "10.0.0.7"}) and forwarded({"forwarded": "for=10.0.0.7"})
    assert not forwarded({"Host": "localhost:8501"}) and not forwarded({}) and not forwarded(None)


def test_a_file_inside_an_allowed_folder_that_links_out_is_refused(root, tmp_path):
    (root / "mixed").mkdir()
    write_folder(root / "mixed")
    os.remove(root / "mixed" / "t10k-images-idx3-ubyte")
    (root / "mixed" / "t10k-images-idx3-ubyte").symlink_to(tmp_path / "private" / "t10k-images-idx3-ubyte")
    with pytest.raises(DataAccessError, match=REFUSED):
        inside(root, "mixed")
    (root / "fashion" / "classes.txt").symlink_to(tmp_path / "private" / "train-labels-idx1-ubyte")
    with pytest.raises(DataAccessError, match=REFUSED):
        inside(root, "fashion")


def test_sizes_past_numpy_s_integers_and_a_huge_classes_txt_are_refused(tmp_path, pulled):
    folder = tmp_path / "wrap"
    folder.mkdir()
    write_folder(folder)
    # Dimensions whose product is 2**64 - 2: numpy's int64 product wraps to -2.
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (218934409, 859764727, 98))
    (folder / "train-images-idx3-ubyte").write_bytes(header + bytes(1000))
    with pytest.raises(data.DataError, match="promises 18,446,744,073,709,551,614 bytes"):
        data.load_mnist(folder, max_bytes=data.TYPED_MAX_BYTES)
    assert sum(pulled) == 16
    with pytest.raises(data.DataError, match="truncated or padded"):  # read whole by the host: named, not a crash
        data.load_mnist(folder)
    big = tmp_path / "big"
    big.mkdir()
    write_folder(big)
    (big / "classes.txt").write_text("\n".join("abcdefghij") + "\n#" + "x" * 70_000)
    with pytest.raises(data.DataError, match="more than 65,536 bytes"):
        data.load_mnist(big)


def test_a_switch_that_opens_downloads_takes_only_clear_words(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CNN_TYPED_HF", "of")
    with pytest.raises(ValueError, match="MNIST_CNN_TYPED_HF must be on or off, not 'of'"):
        server_settings([])
    monkeypatch.setenv("MNIST_CNN_TYPED_HF", "")
    with pytest.raises(ValueError, match="must be on or off"):
        server_settings([])
    monkeypatch.setenv("MNIST_CNN_TYPED_HF", " OFF ")
    assert server_settings([]).typed_hf is False
    monkeypatch.delenv("MNIST_CNN_TYPED_HF")
    config = tmp_path / "config.toml"
    config.write_text('[mnist_dashboard]\ntyped_hf = "false"\n')
    with pytest.raises(ValueError, match="typed_hf must be true or false, not 'false'"):
        server_settings([], config)
