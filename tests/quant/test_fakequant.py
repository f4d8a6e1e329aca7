"""The fake-quant torch model computes exactly the integer reference model's numbers."""
import numpy as np
import pytest
import torch

from cnn_ip.plan import parse_plan
from quant import reference, train
from quant.model import FloatNet

PLANS = {
    "mixed": """
name: t
input: {channels: 1, height: 8, width: 8}
dataset: digits
layers:
  - {type: conv, out: 4, k: 3, stride: 2, pad: 1, act: leaky, weights: int3, act_bits: 5, bn: true}
  - {type: conv, out: 6, k: 3, pad: 1, act: none, weights: binary, act_bits: 4}
  - {type: maxpool, k: 2}
  - {type: dense, out: 8, act: relu, weights: ternary, act_bits: 3, sparsity: 0.3}
  - {type: dense, out: 10, weights: int8}
""",
    "relu": """
name: t
input: {channels: 1, height: 8, width: 8}
dataset: digits
layers:
  - {type: conv, out: 5, k: 3, pad: 1, weights: int8, act_bits: 8, bn: true}
  - {type: maxpool, k: 3, stride: 2}
  - {type: conv, out: 7, k: 2, weights: ternary, act_bits: 2, sparsity: 0.5}
  - {type: dense, out: 10, weights: binary}
""",
    # padded pools (Darknet: pad // 2 before, the rest after) on signed maps, a conv head
    "padded": """
name: t
input: {channels: 1, height: 24, width: 24}
dataset: digits-detect
detect: {anchors: 1}
layers:
  - {type: conv, out: 4, k: 3, pad: 1, act: leaky, weights: int4, act_bits: 4, bn: true}
  - {type: maxpool, k: 2, stride: 1, pad: 1}
  - {type: conv, out: 5, k: 3, pad: 1, act: leaky, weights: ternary, act_bits: 3}
  - {type: maxpool, k: 3, stride: 2, pad: 2}
  - {type: conv, out: 15, k: 1, act: none, weights: int8}
""",
}


def random_quant_net(plan_text, seed):
    specs = parse_plan(plan_text).layers
    torch.manual_seed(seed)
    net = FloatNet(specs)
    for layer in net.layers:                 # non-trivial batch-norm statistics to fold
        if layer.bn is not None:
            layer.bn.running_mean.uniform_(-0.2, 0.2)
            layer.bn.running_var.uniform_(0.5, 2.0)
            layer.bn.weight.data.uniform_(0.5, 1.5)
    rng = np.random.default_rng(seed)
    calib = images(rng, 64, image_shape(specs))
    qnet = train.quantize_net(specs, net, train.activation_scales(net, calib), mbits=10)
    for layer in qnet.weight_layers():
        layer.set_sparsity(0 if layer.spec.sparsity == "auto" else layer.spec.sparsity)
    return qnet, rng


def image_shape(specs):
    """NHWC shape of one input image of the plan's network."""
    c, h, w = specs[0].in_shape
    return h, w, c


def images(rng, n=40, shape=(8, 8, 1)):
    x = rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    x[0], x[1] = 0, 255                     # extremes
    x[2] = rng.choice([0, 255], shape)
    return x


@pytest.mark.parametrize("name", sorted(PLANS))
def test_fake_quant_equals_integer_model(name):
    qnet, rng = random_quant_net(PLANS[name], seed=len(name))
    x = images(rng, shape=image_shape(qnet.specs))
    z_fake = train.fakequant_outputs(qnet, x)
    if z_fake.ndim == 4:                     # a conv head: NCHW -> the reference's NHWC
        z_fake = z_fake.transpose(0, 2, 3, 1)
    z_int = reference.run(qnet.int_layers(), x)
    assert z_fake.shape == z_int.shape
    assert np.array_equal(z_fake, z_int)
    assert len(np.unique(np.argmax(z_int, 1))) > 1 or np.ptp(z_int) > 0   # not a constant net


def test_still_equal_after_training_steps_and_gradients_flow():
    qnet, rng = random_quant_net(PLANS["mixed"], seed=5)
    x = images(rng, 64)
    y = rng.integers(0, 10, 64)
    optimizer = torch.optim.Adam(qnet.parameters(), lr=1e-2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(qnet.logits(train.as_codes(x)).float(),
                                                 torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        for layer in qnet.weight_layers():
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
        optimizer.step()
    int_layers = qnet.int_layers()
    assert np.array_equal(train.fakequant_outputs(qnet, x), reference.run(int_layers, x))
    ternary = next(layer for layer in int_layers if layer.weights == "ternary")
    assert set(np.unique(ternary.W)) <= {-1, 0, 1} and np.mean(ternary.W == 0) >= 0.3
    binary = next(layer for layer in int_layers if layer.weights == "binary")
    assert set(np.unique(binary.W)) == {-1, 1}
    int3 = next(layer for layer in int_layers if layer.weights == "int3")
    assert int3.W.min() >= -3 and int3.W.max() <= 3
    leaky = int_layers[0]
    assert leaky.act == "leaky" and np.all(leaky.M_neg < leaky.M) and (leaky.lo, leaky.hi) == (-16, 15)


def test_re_pruning_keeps_the_mask_whatever_the_dropped_weights_hold():
    qnet, _ = random_quant_net(PLANS["mixed"], seed=6)
    layer = next(layer for layer in qnet.weight_layers() if layer.spec.weights == "ternary")
    before = layer.mask.clone()
    assert 0.25 < float((before == 0).double().mean()) < 0.35
    with torch.no_grad():                 # fine-tuning shrank every kept weight below the dropped ones
        layer.weight.mul_(torch.where(before > 0, 1e-3, 1.0))
    layer.set_sparsity(layer.sparsity)
    assert torch.equal(layer.mask, before)
    layer.set_sparsity(0.5)               # further: drops kept weights only, the smallest
    assert torch.all(layer.mask <= before) and float((layer.mask == 0).double().mean()) > 0.45
    half = layer.mask.clone()
    layer.set_sparsity(0.1)               # less: revives the largest dropped weights
    assert torch.all(layer.mask >= half)
    revived = (layer.mask > half)
    assert layer.weight.abs()[revived].min() >= layer.weight.abs()[(layer.mask == 0)].max()
