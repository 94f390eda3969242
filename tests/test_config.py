import pytest
import torch

from core.config import CACHE_ENV, RECIPES, cache_dir, choose_device, recipe


def test_auto_device_prefers_accelerators():
    device = choose_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert device.type == expected


def test_explicit_cpu():
    assert choose_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_trains_on_the_gpu(tmp_path):
    from core.train import load_or_train

    trained = load_or_train(recipe("reference", train_limit=2000), device="cuda", root=tmp_path)
    assert trained.info.device.startswith("cuda")


def test_recipes_and_overrides():
    assert RECIPES["reference"].lr == 1e-3 and RECIPES["reference"].batch_size == 100
    assert RECIPES["reference"].epochs == 1
    assert recipe("default", seed=5, lr=None).seed == 5
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("fastest")


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
