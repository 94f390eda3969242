"""Your own digit: preprocessing plus prediction for one drawing, against the 30 ms budget.

A drawing is simulated as the canvas returns it: a 280x280 RGBA array, dark strokes on
white. Also times the two halves apart and a photo-sized upload (PNG bytes, 1200x900).
Medians of warm runs.

    python bench/digit_speed.py [--recipe reference]
"""

from __future__ import annotations

import argparse
import io

import numpy as np
from PIL import Image
from timing import median_ms

from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.preprocess import preprocess_array, preprocess_bytes
from core.train import load_or_train

BUDGET_MS = 30
REPEATS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    model = load_or_train(recipe(args.recipe)).model
    digit = 255 - load_mnist().test.images[0]
    canvas = np.full((280, 280, 4), 255, np.uint8)
    canvas[40:250, 40:250, :3] = np.asarray(Image.fromarray(digit).resize((210, 210)))[..., None]
    photo = np.full((900, 1200), 235, np.uint8)
    photo[200:760, 300:860] = np.asarray(Image.fromarray(digit).resize((560, 560))) * 0.9
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    photo_png = buffer.getvalue()

    def drawing() -> int:
        return int(predict_logits(model, to_tensor(preprocess_array(canvas).image[None])).argmax())

    pre = median_ms(lambda: preprocess_array(canvas), REPEATS)
    image = preprocess_array(canvas).image
    predict = median_ms(lambda: predict_logits(model, to_tensor(image[None])), REPEATS)
    total = median_ms(drawing, REPEATS)
    upload = median_ms(lambda: predict_logits(model, to_tensor(preprocess_bytes(photo_png).image[None])), REPEATS)
    print(f"preprocess a 280x280 drawing       {pre:6.2f} ms")
    print(f"predict one 28x28 digit            {predict:6.2f} ms")
    print(f"drawing → prediction (both)        {total:6.2f} ms   {total / BUDGET_MS:.2f}x the {BUDGET_MS} ms budget")
    print(f"1200x900 PNG upload → prediction   {upload:6.2f} ms")
    print(f"(the drawing reads as {drawing()})")


if __name__ == "__main__":
    main()
