import pytest
import torch

from core.config import CACHE_ENV, RECIPES, cache_dir, choose_device, recipe


def _fake_accelerators(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _fake_accelerators(monkeypatch, cuda, mps)
    assert choose_device("auto") == torch.device(expected)
    assert choose_device() == torch.device(expected)  # auto is the default


def test_auto_device_without_an_mps_backend(monkeypatch):
    """A torch build without torch.backends.mps falls back to the CPU instead of failing."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")
    assert choose_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(("cuda", "mps"), [(True, True), (False, False), (True, False), (False, True)])
def test_explicit_cpu_ignores_accelerators(monkeypatch, cuda, mps):
    _fake_accelerators(monkeypatch, cuda, mps)
    assert choose_device("cpu") == torch.device("cpu")


def test_explicit_accelerators_when_present(monkeypatch):
    _fake_accelerators(monkeypatch, True, True)
    assert choose_device("cuda") == torch.device("cuda")
    assert choose_device("cuda:1") == torch.device("cuda", 1)
    assert choose_device("mps") == torch.device("mps")


def test_explicit_accelerators_when_absent_are_clear_errors(monkeypatch):
    _fake_accelerators(monkeypatch, False, False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        choose_device("cuda:0")
    with pytest.raises(ValueError, match="MPS is not available"):
        choose_device("mps")


@pytest.mark.parametrize("name", ["tpu", "gpu", "", "xla:0"])
def test_unknown_device_names(name):
    with pytest.raises(ValueError, match="unknown device"):
        choose_device(name)


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


def test_server_settings_from_each_place(monkeypatch):
    from core.config import MAX_MODELS_ENV, PINNED_ENV, TRAINING_ENV, ServerSettings, server_settings

    for name in (TRAINING_ENV, PINNED_ENV, MAX_MODELS_ENV):
        monkeypatch.delenv(name, raising=False)
    assert server_settings([]) == ServerSettings()
    assert server_settings(["--no-training"]).training is False  # streamlit run dashboard/Home.py -- --no-training
    monkeypatch.setenv(TRAINING_ENV, "off")
    assert server_settings([]).training is False
    monkeypatch.setenv(TRAINING_ENV, "on")
    monkeypatch.setenv(PINNED_ENV, "AAAA, bbbb")
    monkeypatch.setenv(MAX_MODELS_ENV, "5")
    settings = server_settings(["--model", "cccc", "--model", "aaaa"])
    assert settings.pinned == ("aaaa", "bbbb", "cccc") and settings.max_models == 5 and settings.training
    assert server_settings(["--max-models", "2"]).max_models == 2


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--no-trainig"], {}, "unknown argument '--no-trainig'"),
        (["--max-models", "0"], {}, "at least one model"),
        ([], {"MNIST_CNN_MAX_MODELS": "many"}, "must be a whole number"),
        (["--data", "/no/such/folder"], {}, "data folder '/no/such/folder' does not exist"),
        ([], {"MNIST_CNN_DATA": "hf:"}, "hf: must be followed by a Hugging Face data set's name"),
    ],
)
def test_server_settings_refuse_what_they_cannot_read(monkeypatch, argv, env, message):
    from core.config import server_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        server_settings(argv)


def test_server_settings_from_the_config_file_then_environment_then_arguments(monkeypatch, tmp_path):
    from core.config import MAX_MODELS_ENV, PINNED_ENV, TRAINING_ENV, server_settings

    for name in (TRAINING_ENV, PINNED_ENV, MAX_MODELS_ENV):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nheadless = true\n\n[mnist_dashboard]\ntraining = false\nmodels = ["AAAA"]\nmax_models = 7\n'
    )
    settings = server_settings([], config)
    assert (settings.training, settings.pinned, settings.max_models) == (False, ("aaaa",), 7)
    monkeypatch.setenv(TRAINING_ENV, "on")  # the environment overrides the file
    assert server_settings([], config).training is True
    assert server_settings(["--no-training"], config).training is False  # and the arguments override both
    config.write_text("[mnist_dashboard]\ntrainig = false\n")
    with pytest.raises(ValueError, match="has no setting trainig"):
        server_settings([], config)


def test_the_server_opens_on_the_data_it_is_given(monkeypatch, tmp_path):
    """``streamlit run dashboard/Home.py -- --data FOLDER``, the environment or the settings file
    name the data set; a folder is written as its absolute path, as the command line trains it."""
    from core.config import DATA_ENV, RECIPES, server_settings

    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clothes").mkdir()
    assert server_settings([]).data == "bundled"
    assert server_settings([]).default_config() == RECIPES["default"]
    settings = server_settings(["--data", "clothes"])
    assert settings.data == str(tmp_path / "clothes")
    assert settings.default_config() == RECIPES["default"].replace(data_source=str(tmp_path / "clothes"))
    config = tmp_path / "config.toml"
    config.write_text('[mnist_dashboard]\ndata = "hf:fashion_mnist"\n')
    assert server_settings([], config).data == "hf:fashion_mnist"
    monkeypatch.setenv(DATA_ENV, "clothes")  # the environment overrides the file
    assert server_settings([], config).data == str(tmp_path / "clothes")


def test_a_host_can_keep_visitors_to_the_servers_data(monkeypatch, tmp_path):
    """--no-typed-data, MNIST_CNN_TYPED_DATA=off or typed_data = false: no typed folder or hf:NAME."""
    from core.config import TYPED_DATA_ENV, server_settings

    monkeypatch.delenv(TYPED_DATA_ENV, raising=False)
    assert server_settings([]).typed_data is True
    assert server_settings(["--no-typed-data"]).typed_data is False
    config = tmp_path / "config.toml"
    config.write_text("[mnist_dashboard]\ntyped_data = false\n")
    assert server_settings([], config).typed_data is False
    monkeypatch.setenv(TYPED_DATA_ENV, "on")
    assert server_settings([], config).typed_data is True
    monkeypatch.setenv(TYPED_DATA_ENV, "off")
    assert server_settings([]).typed_data is False
