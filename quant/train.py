"""Training loops: fp32 training, activation-scale calibration, quantization-aware
fine-tuning, and accuracy.  Everything seeded; progress bars (tqdm) go to stderr."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from quant.fakequant import QLayer, QuantNet
from quant.model import FloatNet, folded_parameters

BATCH = 64
INPUT_SCALE = 1 / 255          # real value of one step of the 8-bit input


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1):
    """Seed python, numpy and torch; deterministic kernels and a fixed thread count
    (the summation order of float reductions may depend on it); restore on exit."""
    old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])


def environment() -> dict:
    """What a seeded run's figures depend on beyond its seed: the numerical libraries'
    versions and the BLAS kernels in use (a search's Gaussian process reads float sums
    whose last digits differ between these; docs/quant.md measured it moving a search)."""
    import platform

    import scipy
    import skopt
    import sklearn
    from threadpoolctl import threadpool_info
    blas = sorted({f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                   for i in threadpool_info() if i["user_api"] == "blas"})
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "scikit-optimize": skopt.__version__, "torch": torch.__version__,
            "blas": blas, "machine": platform.machine()}


def as_float(x_u8) -> torch.Tensor:
    """uint8 NHWC -> real-valued float32 NCHW in [0, 1] (the fp32 model's input)."""
    return torch.from_numpy(np.ascontiguousarray(x_u8.transpose(0, 3, 1, 2))).float() * INPUT_SCALE


def as_codes(x_u8) -> torch.Tensor:
    """uint8 NHWC -> integer-valued float64 NCHW (the quantized model's input)."""
    return torch.from_numpy(np.ascontiguousarray(x_u8.transpose(0, 3, 1, 2))).double()


def batches(n: int, generator: torch.Generator, batch: int = BATCH):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch):
        yield order[start:start + batch]


def fit(model, forward, x, y, *, epochs: int, lr: float, seed: int, desc: str, progress=True,
        loss=None, batch: int = BATCH):
    """Adam with cosine decay, mini-batches of ``batch``, on cross-entropy of
    ``forward(model, x[idx])`` and ``y[idx]``, or on ``loss(forward(model, x[idx]), idx)``
    when given (``y`` then only counts samples)."""
    if epochs <= 0:
        return
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    steps = epochs * ((len(y) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    labels = torch.from_numpy(y)
    model.train()
    for _ in tqdm(range(epochs), desc=desc, leave=False, disable=not progress, unit="epoch"):
        for idx in batches(len(y), generator, batch):
            if loss is None:
                value = F.cross_entropy(forward(model, x[idx]).float(), labels[idx])
            else:
                value = loss(forward(model, x[idx]), idx)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
    model.eval()


def train_fp32(specs, data, *, epochs: int, seed: int, lr: float = 3e-3, progress=True,
               loss=None) -> FloatNet:
    torch.manual_seed(seed)
    net = FloatNet(specs)
    fit(net, lambda m, xb: m(xb), as_float(data.train.x), data.train.y, epochs=epochs, lr=lr,
        seed=seed, desc="fp32 training", progress=progress, loss=loss)
    return net


@torch.no_grad()
def fp32_accuracy(net: FloatNet, split) -> float:
    net.eval()
    return float((net(as_float(split.x)).argmax(1).numpy() == split.y).mean())


@torch.no_grad()
def activation_scales(net: FloatNet, x_u8) -> dict:
    """Per weight layer (except the classifier): the real value of one output step,
    ``clip / levels``, with the clip minimising the quantization MSE on these images."""
    net.eval()
    scales, x = {}, as_float(x_u8)
    layers = list(net.layers)
    for index, layer in enumerate(layers):
        x = layer(x)
        spec = layer.spec
        if spec.type == "maxpool" or index == len(layers) - 1:
            continue
        values = x.double().flatten().numpy()
        signed = spec.act != "relu"
        levels = 2 ** (spec.act_bits - 1) - 1 if signed else 2 ** spec.act_bits - 1
        top = float(np.abs(values).max()) or 1.0
        best = None
        for clip in top * np.linspace(0.2, 1.0, 33):
            step = clip / levels
            q = np.clip(np.rint(values / step), -levels - 1 if signed else 0, levels) * step
            err = float(np.mean((q - values) ** 2))
            if best is None or err < best[0]:
                best = (err, step)
        scales[spec.name] = best[1]
    return scales


def quantize_net(specs, net: FloatNet, scales: dict, *, mbits: int, head_mbits: int | None = None) -> QuantNet:
    """The quantization-aware model with batch norm folded and the given output scales;
    the last layer's ``M`` gets ``head_mbits`` bits when given (else ``mbits``)."""
    qlayers, s_in = {}, INPUT_SCALE
    last = [s for s in specs if s.type != "maxpool"][-1].name
    for spec, layer in zip(specs, net.layers):
        if spec.type == "maxpool":
            continue
        weight, bias = folded_parameters(layer)
        final = spec.name == last
        qlayers[spec.name] = QLayer(spec, weight, bias, s_in=s_in, final=final,
                                    mbits=head_mbits if final and head_mbits else mbits,
                                    s_out=None if final else scales[spec.name])
        if not final:
            s_in = scales[spec.name]
    return QuantNet(specs, qlayers)


def finetune(qnet: QuantNet, data, *, epochs: int, seed: int, lr: float = 1e-3,
             desc="fine-tuning", progress=True, loss=None, batch: int = BATCH) -> None:
    """Quantization-aware fine-tuning: cross-entropy of the real logits, or ``loss`` of the
    last layer's real outputs (:meth:`QuantNet.real_outputs`)."""
    forward = (lambda m, xb: m.logits(xb)) if loss is None else (lambda m, xb: m.real_outputs(xb))
    fit(qnet, forward, as_codes(data.train.x), data.train.y, epochs=epochs,
        lr=lr, seed=seed, desc=desc, progress=progress, loss=loss, batch=batch)


@torch.no_grad()
def fakequant_outputs(qnet: QuantNet, x_u8) -> np.ndarray:
    """The fake-quant model's ``z`` as int64 (its values are exact integers)."""
    qnet.eval()
    z = qnet(as_codes(x_u8)).numpy()
    out = z.astype(np.int64)
    if not np.array_equal(out, z):
        raise AssertionError("fake-quant output is not integral")
    return out


def accuracy_of(z, y) -> float:
    return float((np.argmax(z, axis=1) == y).mean())
