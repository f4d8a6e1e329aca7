"""The Python route: an nn.Sequential of supported layers instead of a YAML plan."""
import numpy as np
import pytest
import torch
from torch import nn

from quant import reference, train
from quant.model import fp32_parameter_count, layers_from_module


def test_sequential_becomes_specs_and_quantizes_exactly():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                           nn.LeakyReLU(0.25), nn.Flatten(), nn.Linear(24, 10)).eval()
    module[1].running_mean.uniform_(-0.1, 0.1)
    specs, net = layers_from_module(module, (1, 8, 8), weights="int4", act_bits=5)
    assert [s.type for s in specs] == ["conv", "maxpool", "conv", "dense"]
    assert specs[2].act == "leaky" and specs[2].slope == 0.25 and specs[2].out_shape == (6, 2, 2)
    assert specs[-1].act_bits is None and specs[0].act_bits == 5
    assert fp32_parameter_count(specs) == sum(p.numel() for n, p in module.named_parameters()
                                              if not n.startswith("1."))   # BN folded away
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(train.as_float(x)), module(train.as_float(x)), atol=1e-6)
    qnet = train.quantize_net(specs, net, train.activation_scales(net, x), mbits=8)
    assert np.array_equal(train.fakequant_outputs(qnet, x), reference.run(qnet.int_layers(), x))


def test_unsupported_module():
    with pytest.raises(ValueError, match="module: unsupported layer AvgPool2d"):
        layers_from_module(nn.Sequential(nn.AvgPool2d(2), nn.Linear(16, 10)), (1, 8, 8))
