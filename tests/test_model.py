import torch

from core.model import MnistCNN, format_layer_table, layer_table


def test_parameter_counts_match_the_seed():
    rows = {row.name: row for row in layer_table()}
    assert [rows[n].parameters for n in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2")] == [
        40,
        296,
        1168,
        4640,
        10260,
        210,
    ]
    assert sum(p.numel() for p in MnistCNN().parameters()) == 16614


def test_output_shapes():
    rows = {row.name: row.output_shape for row in layer_table()}
    assert rows == {
        "conv1": (4, 26, 26),
        "conv2": (8, 24, 24),
        "pool1": (8, 12, 12),
        "conv3": (16, 10, 10),
        "conv4": (32, 8, 8),
        "pool2": (32, 4, 4),
        "fc1": (20,),
        "fc2": (10,),
    }
    logits = MnistCNN()(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)


def test_returns_raw_logits_not_probabilities():
    torch.manual_seed(0)
    logits = MnistCNN()(torch.rand(4, 1, 28, 28))
    assert not torch.allclose(logits.sum(1), torch.ones(4))


def test_table_text_has_the_total():
    assert "16,614" in format_layer_table(layer_table())
