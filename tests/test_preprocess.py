"""Preprocessing of users' digits: every bad input refused clearly, and real digits survive."""

import io

import numpy as np
import pytest
from PIL import Image

from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.preprocess import MAX_BYTES, ImageError, preprocess_array, preprocess_bytes


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def paper_digit(index: int = 0, scale: float = 5.0, size=(300, 260), offset=(40, 60)) -> np.ndarray:
    """A test digit as dark ink on white paper, scaled up and placed in a larger page."""
    digit = 255 - load_mnist().test.images[index]
    side = round(28 * scale)
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    page = np.full(size, 255, np.uint8)
    page[offset[0] : offset[0] + side, offset[1] : offset[1] + side] = big
    return page


def test_output_is_mnist_like():
    result = preprocess_array(paper_digit())
    image = result.image
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert result.inverted
    rows = np.flatnonzero(image.max(axis=1) > 0)
    cols = np.flatnonzero(image.max(axis=0) > 0)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22  # the 20 px box, plus anti-aliasing
    mass = image.astype(float)
    com = [(np.indices(image.shape)[k] * mass).sum() / mass.sum() for k in (0, 1)]
    assert abs(com[0] - 13.5) <= 1.0 and abs(com[1] - 13.5) <= 1.0  # centred by mass
    assert image.max() >= 200 and image[0].max() == 0  # white ink on black


def test_light_on_dark_is_not_inverted():
    result = preprocess_array(255 - paper_digit())
    assert not result.inverted


def test_aspect_ratio_is_kept():
    bar = np.full((200, 200), 255, np.uint8)
    bar[20:180, 90:110] = 0  # a tall thin stroke, 160 x 20
    image = preprocess_array(bar).image
    cols = np.flatnonzero(image.max(axis=0) > 60)
    rows = np.flatnonzero(image.max(axis=1) > 60)
    assert len(rows) >= 19 and len(cols) <= 5


def test_round_trip_keeps_the_models_reading(reference_model):
    """Test digits padded into a large page at a random offset and scale, preprocessed back:
    the model must read at least 95% of them the same way."""
    test = load_mnist().test
    rng = np.random.default_rng(0)
    picks = rng.choice(len(test), 300, replace=False)
    originals, rebuilt = [], []
    for i in picks:
        scale = rng.uniform(1.0, 6.0)
        side = round(28 * scale)
        h, w = rng.integers(side + 10, side + 400, size=2)
        offset = (rng.integers(0, h - side), rng.integers(0, w - side))
        originals.append(test.images[i])
        rebuilt.append(preprocess_array(paper_digit(int(i), scale, (h, w), offset)).image)
    model = reference_model.model
    a = predict_logits(model, to_tensor(np.stack(originals))).argmax(1)
    b = predict_logits(model, to_tensor(np.stack(rebuilt))).argmax(1)
    agreement = (a == b).float().mean().item()
    assert agreement >= 0.95, agreement


def test_upload_formats():
    page = Image.fromarray(paper_digit())
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP"):
        assert preprocess_bytes(png(page, fmt)).image.max() > 0, fmt


def test_alpha_channel_dark_and_light_ink():
    ink = paper_digit() < 128
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = np.where(ink, 255, 0)  # transparent background; ink black
    dark = preprocess_bytes(png(Image.fromarray(rgba)))
    rgba[..., :3] = 255  # white ink on transparent
    light = preprocess_bytes(png(Image.fromarray(rgba)))
    assert np.abs(dark.image.astype(int) - light.image.astype(int)).max() <= 2


def test_empty_canvas():
    with pytest.raises(ImageError, match="all one shade"):
        preprocess_array(np.full((280, 280, 4), 255, np.uint8))


@pytest.mark.parametrize("value", [0, 255])
def test_all_black_or_all_white(value):
    with pytest.raises(ImageError, match="all one shade"):
        preprocess_bytes(png(Image.new("L", (100, 100), value)))


def test_fully_transparent():
    with pytest.raises(ImageError, match="all one shade"):
        preprocess_bytes(png(Image.new("RGBA", (64, 64), (0, 0, 0, 0))))


def test_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        preprocess_bytes(b"%PDF-1.4 this is a document, not a picture")


def test_empty_file():
    with pytest.raises(ImageError, match="empty"):
        preprocess_bytes(b"")


def test_truncated_image():
    data = png(Image.fromarray(paper_digit()), "PNG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        preprocess_bytes(data[: len(data) // 2])


def test_one_pixel_image():
    with pytest.raises(ImageError, match=r"1×1 pixels: too small"):
        preprocess_bytes(png(Image.new("L", (1, 1), 0)))


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    bomb = png(Image.new("1", (12_000, 5_000), 0))  # 60 MP of one colour: a small file
    assert len(bomb) < MAX_BYTES

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_decoding)
    with pytest.raises(ImageError, match=r"claims 12,000×5,000 pixels"):
        preprocess_bytes(bomb)


def test_file_over_the_upload_limit():
    with pytest.raises(ImageError, match="the limit is 5 MB"):
        preprocess_bytes(b"\x89PNG" + bytes(MAX_BYTES + 10))


def test_odd_arrays():
    with pytest.raises(ImageError, match="Expected an image array"):
        preprocess_array(np.zeros((4, 4, 4, 4)))
    float_page = paper_digit().astype(np.float64)
    assert preprocess_array(float_page).image.max() > 0


def test_edit_digit_paints_ink_and_erases_in_place():
    from core.preprocess import EDIT_SCALE, edit_digit

    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[10:18, 12] = 255  # a vertical bar
    strokes = np.zeros((280, 280, 4), dtype=np.uint8)  # nothing drawn: the digit as it was
    assert np.array_equal(edit_digit(digit, strokes), digit)
    strokes[20:30, 50:60] = (0, 0, 0, 255)  # a black square over pixel (2, 5): full ink
    strokes[100:110, 120:130] = (255, 255, 255, 255)  # white over (10, 12): erased
    strokes[200:210, 200:205] = (0, 0, 0, 255)  # half of pixel (20, 20) inked
    strokes[0:10, 270:280] = (0, 0, 0, 128)  # half-opaque black over (0, 27)
    edited = edit_digit(digit, strokes)
    assert edited[2, 5] == 255 and edited[10, 12] == 0 and edited[20, 20] == 128 and edited[0, 27] == 128
    assert edited[11, 12] == 255  # the rest of the bar is kept, not re-centred
    changed = np.argwhere(edited != digit)
    assert {tuple(p) for p in changed} == {(2, 5), (10, 12), (20, 20), (0, 27)}
    assert EDIT_SCALE == 10
    with pytest.raises(ImageError, match="not 280x280 RGBA"):
        edit_digit(digit, np.zeros((280, 280, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="not 28x28"):
        edit_digit(np.zeros((20, 20), dtype=np.uint8), strokes)
