"""Bayesian search of per-layer weight sparsity (scikit-optimize ``gp_minimize``), and
the uniform-sparsity baseline with the same number of evaluations.

One evaluation, for a sparsity vector ``s`` over the layers marked ``sparsity: auto``:
restore the quantization-aware base model, prune each of those layers to its ``s``
(magnitude, per layer), fine-tune briefly, then measure

* ``bits``: the exact model size (every ROM image written, sidecars summed);
* ``val_accuracy``: top-1 of the quantized model on the validation split (its forward
  pass equals the integer reference model bit for bit);

and return the objective (minimised)::

    objective = searched_bits / ref_searched_bits + penalty * max(0, drop - budget)
    drop      = 100 * (ref_accuracy - val_accuracy)      # accuracy points lost

``searched_bits`` is the exact size of the ``auto`` layers' ROM images (the other layers'
bits do not depend on the search, so minimising it minimises the model's bits; scaling
by the searched layers alone keeps the size term from drowning in accuracy noise when the
searched layers are a small part of the model).  ``ref_*`` are the base model's values
(``auto`` layers at the base sparsity, after quantization-aware fine-tuning), ``budget``
the accuracy points pruning may lose for free, each point beyond it costing ``penalty``
(default 1.0, as much as the searched layers' whole size).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from quant import train
from quant.export import exact_model_bits, layer_sparsity

MAX_SPARSITY = 0.95


@dataclass
class Objective:
    ref_bits: int                # searched layers' bits in the base model
    ref_accuracy: float          # base model's validation accuracy
    budget: float = 0.5          # accuracy points
    penalty: float = 1.0         # per point beyond the budget

    def __call__(self, bits: int, accuracy: float) -> float:
        drop = 100 * (self.ref_accuracy - accuracy)
        return bits / self.ref_bits + self.penalty * max(0.0, drop - self.budget)

    def describe(self) -> str:
        return (f"minimise searched_bits/{self.ref_bits} + {self.penalty} * max(0, "
                f"100*({self.ref_accuracy:.6f} - val_accuracy) - {self.budget}) over the "
                "sparsities of the auto layers (searched_bits: exact ROM bits of those layers)")


@dataclass
class Evaluation:
    search: str                  # bayes | uniform
    index: int
    sparsity: dict               # requested, per auto layer
    achieved: dict               # fraction of zero weight codes, per weight layer
    bits: int                    # the whole model
    searched_bits: int           # the auto layers
    val_accuracy: float
    objective: float


def accuracy_score(qnet, split) -> float:
    """Top-1 of the quantized model on ``split`` (the classifier's validation measure)."""
    return train.accuracy_of(train.fakequant_outputs(qnet, split.x), split.y)


class Evaluator:
    """Runs evaluations from one fixed base model (see module docstring).  ``objective``
    may be set after construction, once :meth:`measure` has given the base's values.
    ``score(qnet, split)`` is the validation measure (higher is better; default top-1
    accuracy) and ``loss`` the fine-tuning loss given to :func:`quant.train.finetune`
    (default the classifier's cross-entropy), ``tuning`` its other keyword arguments
    (``lr``, ``batch``); a detector passes its mAP, loss and tuning."""

    def __init__(self, qnet, data, auto_names, objective: Objective | None = None, *,
                 epochs: int, seed: int, score=accuracy_score, loss=None, tuning: dict | None = None):
        self.qnet, self.data, self.auto = qnet, data, list(auto_names)
        self.score, self.loss = score, loss
        self.tuning = dict(tuning or {})
        self.base = copy.deepcopy(qnet.state_dict())
        self.objective, self.epochs, self.seed = objective, epochs, seed
        self.history: list[Evaluation] = []

    def apply(self, sparsity: dict, epochs: int, desc: str = "fine-tuning"):
        """Base model, pruned to ``sparsity``, fine-tuned ``epochs``: left in ``self.qnet``."""
        self.qnet.load_state_dict(self.base)
        for layer in self.qnet.weight_layers():
            if layer.spec.name in sparsity:
                layer.set_sparsity(sparsity[layer.spec.name])
        train.finetune(self.qnet, self.data, epochs=epochs, seed=self.seed, desc=desc,
                       progress=False, loss=self.loss, **self.tuning)

    def measure(self) -> tuple[int, int, float, list]:
        """``(model bits, searched layers' bits, validation accuracy, integer layers)``."""
        layers = self.qnet.int_layers()
        bits, per_layer = exact_model_bits(layers)
        searched = sum(per_layer[name] for name in self.auto)
        return bits, searched, self.score(self.qnet, self.data.val), layers

    def __call__(self, search: str, values) -> float:
        sparsity = {name: round(float(v), 6) for name, v in zip(self.auto, values)}
        self.apply(sparsity, self.epochs)
        bits, searched, accuracy, layers = self.measure()
        value = self.objective(searched, accuracy)
        achieved = {l.name: round(layer_sparsity(l), 6) for l in layers if l.W is not None}
        self.history.append(Evaluation(search, len(self.history), sparsity, achieved, bits,
                                       searched, accuracy, round(value, 6)))
        return value


def run_searches(evaluator: Evaluator, *, evaluations: int, seed: int, progress=True) -> dict:
    """Bayesian per-layer search and uniform baseline, ``evaluations`` each.

    Returns ``{"bayes": [...], "uniform": [...], "best": {...}}`` (records as dicts); the
    best is the lowest objective of the Bayesian search."""
    from skopt import gp_minimize
    from skopt.space import Real

    results = {}
    bar = tqdm(total=2 * evaluations, desc="sparsity search", disable=not progress, unit="eval")
    for search, dims in (("bayes", len(evaluator.auto)), ("uniform", 1)):
        start = len(evaluator.history)

        def func(x, search=search):
            values = x if search == "bayes" else x * len(evaluator.auto)
            value = evaluator(search, values)
            bar.update(1)
            return value

        gp_minimize(func, [Real(0.0, MAX_SPARSITY)] * dims, n_calls=evaluations,
                    n_initial_points=max(1, min(5, evaluations // 2)), random_state=seed)
        results[search] = [asdict(e) for e in evaluator.history[start:]]
    bar.close()
    best = min(results["bayes"], key=lambda e: (e["objective"], e["index"]))
    results["best"] = best
    return results
