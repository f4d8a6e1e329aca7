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


def test_fp32_maxpool_pads_as_darknet():
    """Tiny-YOLOv2's 2x2 stride-1 pool with pad 1: no row/column before, one after, and
    the padding never wins a window even when every value is negative."""
    from cnn_ip.plan import parse_plan
    from quant.model import FloatNet
    plan = parse_plan("name: net\ninput: {channels: 2, height: 5, width: 4}\n"
                      "device: ecp5-85f\nclock_mhz: 100\nlayers:\n"
                      "  - {type: conv, out: 3, k: 3, pad: 1, act: leaky, weights: int8, act_bits: 8}\n"
                      "  - {type: maxpool, k: 2, stride: 1, pad: 1}\n"
                      "  - {type: conv, out: 2, k: 1, weights: int8}\n")
    pool = FloatNet(plan.layers).layers[1]
    x = -1.0 - torch.rand(1, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    y = pool(x)[0].numpy()
    assert y.shape == (3, 5, 4) == plan.layers[1].out_shape
    a = x[0].numpy()
    for i in range(5):
        for j in range(4):            # the window at (i, j) covers rows i..i+1, columns j..j+1
            assert np.array_equal(y[:, i, j], a[:, i:i + 2, j:j + 2].max(axis=(1, 2)))
    assert np.all(y < -1)
