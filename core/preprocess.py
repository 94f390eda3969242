"""Turn a user's drawing, photo or scan into a 28x28 digit the way MNIST was made.

MNIST's recipe: grey levels with white ink on black; the digit's bounding box scaled so its
longer side is 20 pixels (aspect ratio kept, anti-aliased); placed in a 28x28 frame so
that its centre of mass sits at the centre. :func:`preprocess_bytes` (an uploaded file)
and :func:`preprocess_array` (a canvas) do the same, and refuse bad input with an
:class:`ImageError` that says what is wrong and what to do.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.data import IMAGE_SIZE, MNIST_WORDS, Naming

DIGIT_BOX = 20  # MNIST scaled each digit's longer side to 20 pixels
MAX_BYTES = 5 * 1024 * 1024  # matches the app's upload limit (.streamlit/config.toml)
MAX_PIXELS = 40_000_000  # refuse larger images before decoding: a 40 MP photo is already huge
MIN_SIDE = 8  # smaller images cannot hold a recognisable digit
WORK_SIDE = 512  # big photos are reduced to this before the steps below: 20 px is the target
INK_THRESHOLD = 0.25  # share of the strongest ink that counts as ink for the bounding box
MIN_CONTRAST = 0.12  # below this spread of grey levels, the image is blank


class ImageError(ValueError):
    """The input cannot become a digit; the message says why and what to do."""


@dataclass(frozen=True)
class Preprocessed:
    """The 28x28 uint8 digit the model sees, and what was done to get it."""

    image: np.ndarray  # uint8 (28, 28), white ink on black, as MNIST
    source: np.ndarray  # uint8 (h, w) grey levels of the input (reduced when large), for display
    inverted: bool  # True when the input was dark ink on a light background
    box: tuple[int, int, int, int]  # the ink's bounding box in ``source``: top, left, bottom, right


def preprocess_bytes(data: bytes, words: Naming = MNIST_WORDS) -> Preprocessed:
    """An uploaded image file (PNG, JPEG, GIF, BMP, WebP, TIFF…) → a 28x28 digit; the messages
    call what it should show as ``words`` does ("one digit", "one item")."""
    if not data:
        raise ImageError(f"The file is empty. Upload a PNG or JPEG picture of one {words.noun}.")
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB. "
            f"Crop the picture to the {words.noun} or save it smaller."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"The image claims {width:,}×{height:,} pixels ({width * height / 1e6:.0f} MP); the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} MP, so it was not decoded. Resize it and upload it again."
                )
            image.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG: decode at reduced size straight away
            image = ImageOps.exif_transpose(image)  # phone photos: apply the stored rotation
            image.load()
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError("This file is not an image Pillow can read. Upload a PNG, JPEG, GIF, BMP or WebP.") from err
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageError(f"The image is too large to decode safely ({err}). Resize it and upload it again.") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"The image is damaged or truncated ({err}). Save it again and re-upload it.") from err
    return _preprocess_image(image, words)


def preprocess_array(pixels: np.ndarray, words: Naming = MNIST_WORDS) -> Preprocessed:
    """A uint8 array (H, W), (H, W, 3) or (H, W, 4) such as a canvas → a 28x28 digit (``words``:
    as :func:`preprocess_bytes`)."""
    pixels = np.asarray(pixels)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
        raise ImageError(f"Expected an image array (H, W[, 1|3|4]), got shape {pixels.shape}.")
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return _preprocess_image(Image.fromarray(pixels), words)  # mode L, RGB or RGBA from the shape


def _preprocess_image(image: Image.Image, words: Naming = MNIST_WORDS) -> Preprocessed:
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"The image is {width}×{height} pixels: too small to hold {words.a}. Use at least {MIN_SIDE}×{MIN_SIDE}."
        )
    image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    grey = _to_grey(image)  # float (h, w) in [0, 1]
    source = (grey * 255).round().astype(np.uint8)
    ink, inverted = _ink(grey)
    if ink.max() < MIN_CONTRAST:
        raise ImageError(
            f"No {words.noun} found: the image is all one shade. Draw or photograph a dark {words.noun} on a light "
            "background (or a light one on dark)."
        )
    ink = ink / ink.max()
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    digit = _fit_box(np.where(ink >= INK_THRESHOLD * 0.5, ink, 0.0)[top:bottom, left:right])
    return Preprocessed(image=_centre_by_mass(digit), source=source, inverted=inverted, box=(top, left, bottom, right))


def _to_grey(image: Image.Image) -> np.ndarray:
    """Grey levels in [0, 1]; transparent pixels take the shade that contrasts with the opaque ones."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[:, :, 3]
        grey = rgba[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        opaque = alpha > 0.5
        if not opaque.any():
            return np.zeros(alpha.shape, dtype=np.float32)  # fully transparent: blank
        backdrop = 1.0 if grey[opaque].mean() < 0.5 else 0.0  # dark ink → white paper, light ink → black
        return grey * alpha + backdrop * (1 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _ink(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Ink strength in [0, ...] with the background at 0, and whether the input was dark on light.

    The background is the median of the image's border: most digits leave the border empty.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    ink = (background - grey) if inverted else (grey - background)
    return np.clip(ink, 0.0, None), inverted


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is 20 pixels, keeping the aspect ratio, anti-aliased."""
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray((crop * 255).astype(np.float32)).resize(size, Image.Resampling.LANCZOS)  # mode F
    return np.clip(np.asarray(resized), 0, 255)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place a (<=20, <=20) digit in a 28x28 frame with its centre of mass at the centre."""
    h, w = digit.shape
    total = digit.sum()
    rows, cols = np.indices(digit.shape)
    com_r = (rows * digit).sum() / total if total else h / 2
    com_c = (cols * digit).sum() / total if total else w / 2
    centre = (IMAGE_SIZE - 1) / 2
    top = int(np.clip(round(centre - com_r), 0, IMAGE_SIZE - h))
    left = int(np.clip(round(centre - com_c), 0, IMAGE_SIZE - w))
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    frame[top : top + h, left : left + w] = digit
    return frame.round().astype(np.uint8)


EDIT_SCALE = 10  # canvas pixels per digit pixel when a digit is edited on a 280x280 canvas


def edit_digit(digit: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """A 28x28 digit with strokes painted over it on a canvas ``EDIT_SCALE`` times larger.

    ``digit`` uint8 (28, 28), white ink on black as MNIST; ``strokes`` (280, 280, 4) RGBA, what the
    person drew over the digit's picture: dark strokes add ink, light strokes erase it, each in
    proportion to its opacity (transparent pixels leave the digit as it was). No cropping or
    re-centring: the edit stays where it was drawn. Each digit pixel becomes the mean of its
    10x10 canvas pixels. Returns uint8 (28, 28)."""
    digit = np.asarray(digit)
    side = IMAGE_SIZE * EDIT_SCALE
    if digit.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ImageError(f"the digit to edit is {digit.shape}, not {IMAGE_SIZE}x{IMAGE_SIZE}")
    strokes = np.asarray(strokes)
    if strokes.shape != (side, side, 4):
        raise ImageError(f"the canvas sent a {strokes.shape} picture, not {side}x{side} RGBA: reload the page")
    ink = np.repeat(np.repeat(digit.astype(np.float32) / 255.0, EDIT_SCALE, axis=0), EDIT_SCALE, axis=1)
    alpha = strokes[:, :, 3].astype(np.float32) / 255.0
    stroke_ink = 1.0 - strokes[:, :, :3].astype(np.float32).mean(axis=2) / 255.0  # dark stroke: ink
    painted = ink * (1.0 - alpha) + stroke_ink * alpha
    small = painted.reshape(IMAGE_SIZE, EDIT_SCALE, IMAGE_SIZE, EDIT_SCALE).mean(axis=(1, 3))
    return np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8)
