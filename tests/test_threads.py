"""One model shared by many threads, as the dashboard shares it between sessions: every
result must equal the single-threaded one, and the model must come out as it went in
(no hooks, same parameters, same mode) and never be touched while the threads run."""

from __future__ import annotations

import random
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from core.activations import layer_outputs
from core.attributions import AttributionRequest, attribute, explain
from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.model import MnistCNN, layer_table


def pool_like_main() -> ThreadPoolExecutor:
    """Worker threads with the main thread's torch thread count. OpenMP's count is per
    thread and a new thread takes the last value set anywhere (the app sets 1 per page run);
    a different count changes the order of float sums, so results would differ in the last bit."""
    threads = torch.get_num_threads()
    return ThreadPoolExecutor(max_workers=THREADS, initializer=torch.set_num_threads, initargs=(threads,))


THREADS = 8
CALLS_PER_THREAD = 100
N_IMAGES = 12

REQUESTS = {
    "saliency": AttributionRequest("Saliency"),
    "guided": AttributionRequest("Guided Backprop"),
    "deeplift": AttributionRequest("DeepLift", target="true"),
    "gradcam2": AttributionRequest("Grad-CAM", layer="conv2"),
    "gradcam4": AttributionRequest("Grad-CAM", layer="conv4", upsample=True),
    "occlusion": AttributionRequest.of("Occlusion", {"window": 4, "stride": 4}),
    "smoothgrad": AttributionRequest.of("SmoothGrad", {"samples": 4, "noise": 0.2}, target="class", chosen_class=7),
    "contrast": AttributionRequest("Input × Gradient", target="predicted − true"),
}
KINDS = ("layers", *REQUESTS)


@pytest.fixture(scope="module")
def digits(reference_model):
    """N_IMAGES test digits, one (1, 1, 28, 28) tensor each, with predicted and true classes."""
    split = load_mnist().test
    images = to_tensor(split.images[:N_IMAGES])
    predicted = predict_logits(reference_model.model, images).argmax(dim=1)
    true = torch.from_numpy(split.labels[:N_IMAGES]).long()
    return [(images[i : i + 1], predicted[i : i + 1], true[i : i + 1]) for i in range(N_IMAGES)]


def run(kind: str, model, digit) -> dict[str, np.ndarray]:
    image, predicted, true = digit
    if kind == "layers":
        return layer_outputs(model, image)
    return {"map": explain(REQUESTS[kind], model, image, predicted, true)}


def snapshot(model) -> tuple[dict[str, torch.Tensor], bool]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, model.training


def assert_untouched(model, before) -> None:
    params, training = before
    now = model.state_dict()
    assert now.keys() == params.keys()
    assert all(torch.equal(params[k], now[k]) and now[k].is_contiguous() for k in params)
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())  # no gradient left behind
    assert model.training == training
    assert not any(hooks(m) for m in model.modules())


def hooks(module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "_backward_pre_hooks", None)
    )


class Watcher:
    """Polls the shared model while threads run: any hook or mode change, even a brief one, is recorded."""

    def __init__(self, model):
        self.model, self.training = model, model.training
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.stop.is_set():
            for name, m in self.model.named_modules():
                if hooks(m):
                    self.seen.append(f"hook on {name or 'model'}")
            if self.model.training != self.training:
                self.seen.append("training flag changed")
            time.sleep(0.002)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def test_many_threads_mixed_requests_match_single_threaded(reference_model, digits):
    model = reference_model.model
    before = snapshot(model)
    expected = {(kind, i): run(kind, model, digits[i]) for kind in KINDS for i in range(N_IMAGES)}
    assert_untouched(model, before)

    rng = random.Random(0)
    tasks = [(rng.choice(KINDS), rng.randrange(N_IMAGES)) for _ in range(THREADS * CALLS_PER_THREAD)]
    assert {kind for kind, _ in tasks} == set(KINDS)
    with Watcher(model) as watcher, pool_like_main() as pool:
        results = list(pool.map(lambda task: run(task[0], model, digits[task[1]]), tasks))
    assert watcher.seen == []

    for (kind, i), result in zip(tasks, results, strict=True):
        want = expected[kind, i]
        assert result.keys() == want.keys()
        for key in want:
            # Exact: the same inputs, shapes and kernels; the thread a call runs on must not matter.
            assert np.array_equal(result[key], want[key]), f"{kind} on image {i}: {key} differs"
    assert_untouched(model, before)


def test_layer_table_and_predict_logits_from_threads_leave_the_model_alone(reference_model, digits):
    model = reference_model.model
    images = torch.cat([image for image, _, _ in digits])
    before = snapshot(model)
    want_table = layer_table(model)
    want_logits = predict_logits(model, images, batch_size=5)

    calls: list[str] = []
    patched = [(m, name) for m in model.modules() for name in REGISTER]
    for m, name in patched:  # any hook registration or train()/eval() on the shared model is recorded
        setattr(m, name, recorder(calls, name))
    model.train = recorder(calls, "train")
    try:

        def work(k: int):
            return layer_table(model) if k % 2 else predict_logits(model, images, batch_size=5)

        with Watcher(model) as watcher, pool_like_main() as pool:
            results = list(pool.map(work, range(THREADS * 8)))
    finally:
        for m, name in patched:
            delattr(m, name)
        del model.train
    assert calls == [] and watcher.seen == []
    for k, result in enumerate(results):
        if k % 2:
            assert result == want_table
        else:
            assert torch.equal(result, want_logits)
    assert_untouched(model, before)


REGISTER = (
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_backward_hook",
)


def recorder(calls: list[str], name: str):
    def record(*args, **kwargs):
        calls.append(name)
        raise AssertionError(f"{name} called on the shared model")

    return record


def test_threads_leave_the_warning_filters_alone():
    model, x = MnistCNN().eval(), torch.rand(1, 1, 28, 28)
    with warnings.catch_warnings():  # restores the filters for later tests whatever happens
        before = list(warnings.filters)
        with pool_like_main() as pool:
            list(pool.map(lambda _: attribute("Saliency", model, x, 0), range(400)))
        assert warnings.filters == before


def test_probes_and_label_issues_from_threads_match_single_threaded(reference_model):
    """The Probe page's sweeps and searches and the cleanlab ranking, from many sessions at
    once on the one shared model: each equals its single-threaded result, the model untouched."""
    from core import label_issues, probes

    model = reference_model.model
    images = load_mnist().test.images[:4]
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    probs = rng.dirichlet(np.ones(10), len(labels))

    def work(i: int):
        image = images[i % 4]
        return (
            probes.sweep(model, image, "rotation").probs,
            probes.counterfactual(model, image, 9 - i % 4, 0.9, max_steps=40).edited,
            label_issues.find(labels, probs).flagged,
        )

    alone = [work(i) for i in range(4)]
    before = snapshot(model)
    with pool_like_main() as pool:
        results = list(pool.map(work, range(4 * THREADS)))
    assert_untouched(model, before)
    for i, result in enumerate(results):
        for got, want in zip(result, alone[i % 4], strict=True):
            np.testing.assert_array_equal(got, want)


def test_reports_from_threads_match_single_threaded(reference_model):
    """The report buttons build their HTML on a thread of their own, each on the one shared
    model: a digit report built by many at once equals the one built alone (its figures and
    numbers, the figures' random element ids and the minute it was made aside), the model untouched."""
    import re

    from dashboard.report import digit_report

    data = load_mnist()

    def work(i: int) -> str:
        index = (3, 8)[i % 2]
        text = digit_report(
            reference_model, data, data.test.images[index], f"test #{index}", int(data.test.labels[index])
        )
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "WHEN", text)

    alone = [work(i) for i in range(2)]
    before = snapshot(reference_model.model)
    with pool_like_main() as pool:
        results = list(pool.map(work, range(THREADS)))
    assert_untouched(reference_model.model, before)
    assert all(result == alone[i % 2] for i, result in enumerate(results))
