"""Writing the integer model: weight ROM images (the sparse format's writer), bias and
requantization-constant ROMs, ``model.npz``; and the model's exact size in bits.

ROM images of one weight layer ``NAME`` (each ``STEM.hex`` + ``STEM.json``):

* ``NAME_w``     weights, through :func:`write_layer_weights` (``quant.sparse_format``);
* ``NAME_bias``  ``bias[c]`` in the smallest two's-complement width that holds them all;
* ``NAME_m``     ``M[c]``, unsigned, the smallest width that holds them all;
* ``NAME_mneg``  ``M_neg[c]`` (leaky layers only; otherwise ``M_neg == M``);
* ``NAME_s``     the shift ``S``, one word (not for the classifier, which outputs
  ``acc * M`` unshifted).

Model size = :func:`quant.rom_image.model_bits` over the directory: exact, never estimated.
"""
from __future__ import annotations

import tempfile

import numpy as np

from quant import reference, weight_modes
from quant.fixedpoint import signed_bits, twos_complement, unsigned_bits
from quant.rom_image import model_bits, write_rom
from quant.sparse_format import write_weights

LANE_CHOICES = (8, 4, 2, 1)
SIMD_CHOICES = (16, 8, 4, 2, 1)


def packing(cout: int, reduce: int) -> tuple[int, int]:
    """``(lanes, simd)`` for a layer's ROM: the largest of 8, 4, 2, 1 dividing ``Cout`` and
    the largest of 16, 8, 4, 2, 1 dividing the reduction length ``R`` (no padding beats)."""
    lanes = next(n for n in LANE_CHOICES if cout % n == 0)
    simd = next(n for n in SIMD_CHOICES if reduce % n == 0)
    return lanes, simd


def write_layer_weights(out_dir, layer: reference.IntLayer) -> dict:
    """The one place weights become a ROM image (switching formats is one line here)."""
    weights, wbits = weight_modes.parse(layer.weights)
    lanes, simd = packing(*layer.W.shape)
    return write_weights(out_dir, f"{layer.name}_w", layer.W, weights=weights, wbits=wbits,
                         lanes=lanes, simd=simd)


def write_constants(out_dir, layer: reference.IntLayer) -> list[dict]:
    geometry = {"layer": layer.name, "cout": int(layer.W.shape[0])}
    bias_bits = signed_bits(layer.bias)
    infos = [write_rom(out_dir, f"{layer.name}_bias", twos_complement(layer.bias, bias_bits),
                       bias_bits, format="cnn_ip.bias/1", signed=True, **geometry)]
    m_bits = unsigned_bits(layer.M)
    infos.append(write_rom(out_dir, f"{layer.name}_m", layer.M, m_bits, format="cnn_ip.requant_m/1",
                           shift=int(layer.S), final=layer.final, **geometry))
    if layer.act == "leaky":
        infos.append(write_rom(out_dir, f"{layer.name}_mneg", layer.M_neg, unsigned_bits(layer.M_neg),
                               format="cnn_ip.requant_m/1", shift=int(layer.S), negative=True,
                               **geometry))
    if not layer.final:
        infos.append(write_rom(out_dir, f"{layer.name}_s", [layer.S], unsigned_bits([layer.S]),
                               format="cnn_ip.requant_s/1", lo=int(layer.lo), hi=int(layer.hi),
                               **geometry))
    return infos


def write_model_roms(out_dir, layers) -> dict:
    """All ROM images of the model; ``{layer name: [sidecars]}``."""
    written = {}
    for layer in layers:
        if layer.W is not None:
            written[layer.name] = [write_layer_weights(out_dir, layer), *write_constants(out_dir, layer)]
    return written


def exact_model_bits(layers) -> tuple[int, dict]:
    """``(model bits, {layer: bits})`` by writing the ROMs to a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="cnn_ip_bits_") as scratch:
        written = write_model_roms(scratch, layers)
        total = model_bits(scratch)
    per_layer = {name: sum(info["bits"] for info in infos) for name, infos in written.items()}
    assert total == sum(per_layer.values())
    return total, per_layer


def save(out_dir, layers) -> dict:
    """``model.npz`` and every ROM image into ``out_dir``; returns the sidecars per layer."""
    reference.save_model(f"{out_dir}/model.npz", layers)
    return write_model_roms(out_dir, layers)


def layer_sparsity(layer: reference.IntLayer) -> float:
    return float(np.mean(np.asarray(layer.W) == 0))
