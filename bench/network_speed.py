"""The network contract's cost per click, for the reference CNN and pytorch/examples' Net.

Each network is opened through ``core.network.Network`` with seeded weights (the cost does not
depend on what the weights learned). For one digit, one thread as a dashboard session runs:
the layer outputs through the interpreted graph against the model's own forward (the
interpreter's overhead), the logits, Grad-CAM at a conv layer, and the whole test split's
logits (a background index's pass). Medians of warm runs, against the issue's per-click
budget of 300 ms for a page run.

    python bench/network_speed.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from timing import median_ms

from core.data import load_mnist, to_tensor
from core.model import MnistCNN
from core.network import Contract, Network
from core.network_files import import_class
from core.thread_choice import use_threads

NETS = Path(__file__).resolve().parents[1] / "tests" / "nets"
CLICK_BUDGET_MS = 300
REPEATS = 30


def main() -> None:
    use_threads(1)
    test = load_mnist().test
    digits = to_tensor(test.images[:16])
    one = digits[:1]
    net_cls, _ = import_class(f"{NETS / 'examples_net.py'}:Net")
    torch.manual_seed(0)
    networks = {
        "reference CNN (16,614 parameters)": (Network(MnistCNN().eval(), 10, digits), "conv4"),
        "pytorch/examples Net (1,199,882)": (
            Network(net_cls().eval(), 10, digits, Contract(mean=0.1307, std=0.3081)),
            "conv2",
        ),
    }
    print("one thread; medians of warm runs (ms)")
    for title, (network, conv) in networks.items():
        with torch.inference_mode():
            plain = median_ms(lambda network=network: network.raw(one), REPEATS)
            outputs = median_ms(lambda network=network: network.outputs(one), REPEATS)
            logits = median_ms(lambda network=network: network.logits(one), REPEATS)
        target = network.logits(one).argmax(1)
        cam = median_ms(lambda network=network, conv=conv, target=target: network.grad_cam(one, conv, target), REPEATS)
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(test), 1000):
                network.logits(to_tensor(test.images[i : i + 1000]))
        split = time.perf_counter() - start
        print(f"\n{title}: {len(network.layers)} graph steps, shows {', '.join(network.shown)}")
        print(f"  its own forward, one digit             {plain:8.2f} ms")
        print(f"  every shown layer, interpreted graph   {outputs:8.2f} ms  ({outputs / plain:.1f}x its forward)")
        print(f"  logits through the contract            {logits:8.2f} ms")
        print(
            f"  Grad-CAM at {conv:<6}                    {cam:8.2f} ms  ({cam / CLICK_BUDGET_MS:.3f}x a click's budget)"
        )
        print(f"  logits of the 10,000 test digits       {split * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
