"""Per-layer sparsity and pruning-structure search (scikit-optimize), and the baselines it
is measured against: uniform sparsity and random search, each with the same number of
evaluations.

A *point* gives every layer marked ``sparsity: auto`` a sparsity in ``[0, MAX_SPARSITY]``
and a pruning structure (:func:`structure_choices`): ``unstructured``, or ``blockB``,
whole aligned blocks of ``B`` reduction elements of one output channel
(:mod:`quant.prune`), which only pays where the weight code skips empty blocks
(``cnn_ip.sparse/2``'s block coding).  So the structures offered depend on ``codes``, the
weight codings the hardware will read (``quant.sparse_format.HARDWARE_CODES`` unless
told): with the block coding a layer is pruned unstructured or in blocks (or in blocks
only: :func:`structure_choices`), without it unstructured, and the search has one
dimension per ``auto`` layer.

One evaluation: restore the quantization-aware base model, prune each ``auto`` layer as
the point says, fine-tune ``epochs``, then measure

* ``bits``: the exact model size, every weight layer's ROM in the smallest of ``codes``
  (:func:`quant.sparse_format.layer_bits`, the writer's own sizing) plus its constant
  ROMs (written to a scratch directory, sidecars summed);
* on the validation split: top-1 accuracy (the fake-quant model's outputs equal the
  integer reference model's bit for bit), and the objective's *measure*: for the
  classifier the mean probability of the true class at the temperature that fits the
  validation logits best (:func:`classifier_metrics`), a smoothed accuracy that moves
  with every image's margin instead of in steps of one image (1/360 on digits); the
  cross-entropy is recorded too.  A detector passes its own measure (validation mAP).

With ``repeats`` R > 1 an evaluation is R such fine-tunes of the same point from the same
base, fine-tune r seeded ``seed + r * REPEAT_SEED_STRIDE``, and its record the mean of
their measurements (bits too, rounded: the fine-tuned weights decide which kept weights
round to code 0, the constant ROMs and, with gradual pruning, the later masks); the
objective is computed from those means.  Why: one fine-tune's validation top-1 varies by
0.13-0.47 points between near-equal points on digits, as much as the differences a
comparison between searches decides on.

The objective (minimised)::

    objective = (searched_bits / ref_searched_bits) ** size_exponent + weight * drop
                + penalty * max(0, drop - accuracy_budget)
    drop      = 100 * (ref_measure - val_measure)        # points of the measure lost

``searched_bits`` are the ``auto`` layers' ROM bits (weights and constants; the other
layers' change only by the few weights a fine-tune rounds to or from code 0, -42..+32 bits
of about 10,200 on the bench's digits runs, so minimising them minimises the model's
bits), ``ref_*`` the base
model's values, ``weight`` the price of every point of the measure, lost or gained
(default 0), ``size_exponent`` the power of the relative size (default 1; above 1 a bit
saved near the base's size is worth more than one saved in a small model), ``accuracy_budget``
the points pruning may lose before ``penalty`` applies too (each point beyond it costing
``penalty``, default 1.0, as much as the searched layers' whole size).  With ``weight`` 0
and a budget of a few points, every point within the budget scores its bits alone and
the lowest objective sits at the budget's edge, where the accuracy falls steeply with the
bits; docs/search_history.md gives the measured case for budget 0 and ``weight`` 0.1
instead.  ``scalarization="chebyshev"`` replaces the first two terms by
``max(S, L) + CHEBYSHEV_RHO * (S + L)``, ``S`` the size term, ``L = weight * (drop +
utopia)``: a front is scored where it crosses the ray ``S = L`` from the utopia point
(no bits, ``utopia`` points above the base) instead of wherever its slope meets the
weight (docs/quant.md; on the bench it did not beat the sum, docs/search_history.md).
A ``size_budget`` (bits of the whole model, e.g. the block RAM a device leaves for weights)
adds ``SIZE_PENALTY`` for every percent of it the model exceeds: the search then looks for
the most accurate model that fits, the size term only ranking the points that fit.
With ``size_budget_mode`` fill the budget is kept by construction instead (docs/quant.md):
a point gives no sparsities but shares of the budget's bits (:func:`search_space`,
:func:`allot`), each layer's sparsity is solved from its bits (:func:`solve_sparsity`,
:meth:`Evaluator.fill_sparsity`), and the objective is the measure lost alone (``weight``,
``size_exponent`` and ``accuracy_budget`` play no part) plus ``SIZE_PENALTY`` per percent
a model ends more than ``FILL_MARGIN`` over the budget.

Searches (:func:`run_searches`): ``bayes``, ``gp_minimize`` over every layer's sparsity
and structure; ``uniform``, one sparsity (and one structure, when there is a choice)
shared by all ``auto`` layers, also ``gp_minimize``; ``random``, uniform random points of
the Bayesian search's space (``skopt.space.Space.rvs``).  Optionally (every method alike)
the last ``confirm`` evaluations of each re-evaluate its lowest-objective candidates with
new fine-tune seeds, and its best point (:func:`best_of`) is the candidate of lowest mean
objective: a best point's single observation is the luckiest of many near-equal ones.
Which points are the candidates (``recommend``): the lowest observed objectives
(``"observed"``), or the lowest posterior means of a Gaussian process fitted to the
method's search evaluations (``"model"``, :func:`posterior_means`: the same model
``gp_minimize`` fits, for every method alike), the usual recommendation of a search on a
noisy function, which judges a point by its neighbours' evaluations too instead of by
its one luckiest fine-tune.
"""
from __future__ import annotations

import copy
import tempfile
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from quant import export, prune, sparse_format, train, weight_modes
from quant.export import layer_sparsity
from quant.options import (MAX_SPARSITY, SCALARIZATIONS, SIZE_BUDGET_MODES, STRUCTURE_OFFERS,
                           out_of_range)

# What a Gaussian-process search is shown of an objective above this: a point far beyond
# the accuracy budget scores tens (digits: up to 83) against 0.3-1.4 for the rest, and a
# GP fitted to those cliffs models them instead of the region that matters; capped, every
# such point is just "worse than the unpruned model".  The records keep the true value.
GP_CAP = 2.0
BLOCKS = (4, 8, 16)          # block sizes offered to the search (each must divide simd)
UNSTRUCTURED = "unstructured"
LABELS = (UNSTRUCTURED, *(f"block{b}" for b in BLOCKS))
# Confirmation runs are split evenly over this many of a search's best points
# (bench/search.py's rule, docs/quant.md; cnn-ip quantize's with quantize.confirm)
CANDIDATES = 2
METHODS = ("bayes", "uniform", "random")
# How run_searches picks the candidates its confirmation runs re-evaluate; "model" is not
# the default: on bench tuning seeds 10-19 the Bayesian best dominated uniform's in 4 of 10
# seeds with it, 6 of 10 without (docs/search_history.md)
RECOMMEND = ("observed", "model")
# Seed offset between an evaluation's repeated fine-tunes: above any ``steps`` (a gradual
# pruning's step s fine-tunes with seed + s - 1), so no two fine-tunes share a seed.
REPEAT_SEED_STRIDE = 1000
# Objective per percent of ``size_budget`` a model's bits exceed it: a point 1 % over costs
# as much as the searched layers' whole size at the base, so no accuracy it gains pays for
# it (a model that does not fit is not a choice).  A GP sees a slope only in the first
# percent or two: beyond, the objective passes GP_CAP, and every such point looks alike
SIZE_PENALTY = 1.0
# What skopt warns when its GP proposes a point already evaluated (it draws a random one)
SKOPT_REPEAT_WARNING = "The objective has been evaluated at point"
# The augmented Chebyshev scalarization's sum term: it ranks points the max ties (e.g. two
# of equal size, both above the ray), small so the max decides everywhere else
CHEBYSHEV_RHO = 0.05
# size_budget_mode "fill": the per-layer searches (Bayesian, random) fill this fraction of
# the size budget less than uniform sparsity does.  Fine-tuning moves the constant ROMs'
# widths (bias, M) by a bit or two per output channel, so two models solved to the same
# bits end tens to hundreds of bits apart either way; with the margin, a per-layer point
# as accurate as uniform's is also smaller, and one that is not is not helped by its bits
FILL_MARGIN = 0.01
# How finely a filled layer's sparsity is solved (a block of 16 weights of 73,728 is 2e-4)
FILL_RESOLUTION = 1e-6


def check_objective(size_exponent: float, scalarization: str, weight: float,
                    utopia: float) -> None:
    """:class:`Objective`'s shape settings, as a plan or a flag gives them (ValueError)."""
    for key, value in (("size_exponent", size_exponent), ("utopia", utopia)):
        if problem := out_of_range(key, value):
            raise ValueError(f"{key}: {problem}")
    if scalarization not in SCALARIZATIONS:
        raise ValueError(f"scalarization: must be one of {', '.join(SCALARIZATIONS)}, "
                         f"got {scalarization!r}")
    if scalarization == "chebyshev" and weight <= 0:
        raise ValueError("accuracy_weight: the chebyshev scalarization needs one above 0 "
                         f"(the slope of its ray), got {weight}")


def check_size_budget_mode(mode: str, size_budget: int | None) -> None:
    """ValueError unless ``mode`` is one of :data:`quant.options.SIZE_BUDGET_MODES` and,
    filling, there is a ``size_budget`` to fill."""
    if mode not in SIZE_BUDGET_MODES:
        raise ValueError(f"size_budget_mode: must be one of {', '.join(SIZE_BUDGET_MODES)}, "
                         f"got {mode!r}")
    if mode == "fill" and size_budget is None:
        raise ValueError("size_budget_mode: fill needs a size_budget")


def check_structures(structures: str) -> None:
    """ValueError unless ``structures`` is one of :data:`quant.options.STRUCTURE_OFFERS`."""
    if structures not in STRUCTURE_OFFERS:
        raise ValueError(f"structures: must be one of {', '.join(STRUCTURE_OFFERS)}, "
                         f"got {structures!r}")


class SizeBudgetError(ValueError):
    """A ``size_budget`` the model's other layers already fill: known only once the base
    model is built, so a command reports it late (still as one line)."""


@dataclass
class Objective:
    """The number a search minimises for a point's searched bits and validation measure
    (the module docstring gives the formula; :meth:`describe` writes it with this
    objective's constants)."""
    ref_bits: int                # searched layers' bits in the base model
    ref_accuracy: float          # base model's validation measure
    accuracy_budget: float = 0.5  # points of the measure pruning may lose before penalty
    penalty: float = 1.0         # per point beyond the accuracy budget
    measure: str = "val_accuracy"
    weight: float = 0.0          # per point of the measure, at every drop (gains too)
    size_exponent: float = 1.0   # the size term is (bits / ref_bits) ** size_exponent
    scalarization: str = "sum"   # quant.options.SCALARIZATIONS
    utopia: float = 1.5          # chebyshev: points of the measure above the base
    size_budget: int | None = None  # bits the whole model may take (None: no budget)
    fixed_bits: int = 0          # bits of the layers not searched, in the base model
    fill: bool = False           # size_budget_mode "fill": every point fills the budget

    def __post_init__(self):
        check_objective(self.size_exponent, self.scalarization, self.weight, self.utopia)
        check_size_budget_mode("fill" if self.fill else "penalty", self.size_budget)
        if self.size_budget is not None and self.size_budget <= self.fixed_bits:
            raise SizeBudgetError(f"size_budget: {self.size_budget} bits leaves nothing for "
                                  f"the searched layers (the others take {self.fixed_bits})")

    def over_budget(self, model_bits: int) -> float:
        """Percent of ``size_budget`` a model of ``model_bits`` exceeds it by (filling it,
        beyond ``FILL_MARGIN`` of it: a filled model can end above it by what fine-tuning
        adds to the constant ROMs)."""
        if self.size_budget is None:
            return 0.0
        line = self.size_budget * (1 + FILL_MARGIN) if self.fill else self.size_budget
        return max(0.0, 100 * (model_bits - line) / self.size_budget)

    def __call__(self, bits: int, accuracy: float, model_bits: int | None = None) -> float:
        """``bits``: the searched layers'; ``model_bits``: the whole model's, for the size
        budget (default ``bits + fixed_bits``: the other layers as in the base model)."""
        drop = 100 * (self.ref_accuracy - accuracy)
        over = SIZE_PENALTY * self.over_budget(bits + self.fixed_bits if model_bits is None
                                               else model_bits)
        if self.fill:
            return drop / 100 + over
        size = (bits / self.ref_bits) ** self.size_exponent
        if self.scalarization == "sum":
            trade = size + self.weight * drop
        else:
            lost = self.weight * (drop + self.utopia)
            trade = max(size, lost) + CHEBYSHEV_RHO * (size + lost)
        return trade + self.penalty * max(0.0, drop - self.accuracy_budget) + over

    def describe(self) -> str:
        if self.fill:
            return (f"minimise {self.ref_accuracy:.6f} - {self.measure} + {SIZE_PENALTY} * "
                    f"max(0, 100*(model_bits - {self.size_budget * (1 + FILL_MARGIN):g})/"
                    f"{self.size_budget}) over the pruning structures of the auto layers "
                    f"and their shares of a model of {self.size_budget} bits (every point "
                    f"fills it, size_budget_mode fill, the per-layer searches "
                    f"{100 * (1 - FILL_MARGIN):g} % of it, unless its structures cannot get "
                    f"down to it)")
        drop = f"100*({self.ref_accuracy:.6f} - {self.measure})"
        size = f"searched_bits/{self.ref_bits}"
        if self.size_exponent != 1:
            size = f"({size})^{self.size_exponent:g}"
        penalty = f"{self.penalty} * max(0, {drop} - {self.accuracy_budget})"
        if self.size_budget is not None:
            penalty += (f" + {SIZE_PENALTY} * max(0, 100*(model_bits - {self.size_budget})"
                        f"/{self.size_budget})")
        if self.scalarization == "sum":
            linear = f" + {self.weight} * {drop}" if self.weight else ""
            formula = f"{size}{linear} + {penalty}"
        else:
            formula = (f"max(S, L) + {CHEBYSHEV_RHO} * (S + L) + {penalty} with S = {size}, "
                       f"L = {self.weight} * ({drop} + {self.utopia:g}),")
        bits = "exact ROM bits of those layers" + (
            "; model_bits: of every layer" if self.size_budget is not None else "")
        return (f"minimise {formula} over the sparsities and pruning structures of the auto "
                f"layers (searched_bits: {bits})")


@dataclass
class Evaluation:
    search: str                  # bayes | uniform | random
    index: int
    sparsity: dict               # requested, per auto layer
    structure: dict              # pruning structure, per auto layer
    achieved: dict               # fraction of zero weight codes, per weight layer
    bits: int                    # the whole model, in the smallest of the codes
    searched_bits: int           # the auto layers
    val_accuracy: float          # top-1 (a detector: its score)
    val_measure: float           # what the objective uses
    val_loss: float | None       # classifier: validation cross-entropy
    objective: float
    confirms: int | None = None  # a confirmation run: the index of the record it repeats
    predicted: float | None = None  # recommend="model": the GP's posterior mean (capped objective)
    fill: list | None = None     # size_budget_mode fill: [[layer names, weight bits], ...]


def parse_structure(label: str) -> tuple[str, int | None]:
    """``"unstructured"`` -> ``("unstructured", None)``, ``"block8"`` -> ``("block", 8)``."""
    if label == UNSTRUCTURED:
        return label, None
    return "block", int(label[len("block"):])


def structure_choices(cout: int, reduce: int, weights: str, codes,
                      structures: str = "any") -> list[str]:
    """The pruning structures offered for a ``(cout, reduce)`` layer under ``codes``:
    unstructured, and ``blockB`` for ``B`` in :data:`BLOCKS` dividing the ROM's ``simd``
    (so a block is ``B`` aligned reduction elements of one output channel under every
    fold ``B`` divides) when ``codes`` has the block coding.  Binary layers have no zeros
    (unstructured only, at sparsity 0).

    ``structures="block"`` leaves unstructured out wherever a block size is offered:
    there it costs more bits at the same sparsity and, pruned beyond the base, far more
    accuracy (digits_sparse, seed 10, both wide layers from the base's 0.5 to 0.6, one
    3-epoch evaluation: 72.5 % validation top-1 and 142,807 bits unstructured against
    96.9 % and 110,694 bits in blocks of 4; at 0.72 29.4 % against 95.8 %), so in a short
    search its points mostly spend evaluations; bench/search.py compares the methods so.
    ``"any"`` (``cnn-ip quantize``'s default) keeps it: on the digits example the final
    model it finds is both smaller and more accurate that way (docs/quant.md)."""
    check_structures(structures)
    if "block" not in codes or weights == "binary":
        return [UNSTRUCTURED]
    _, simd = export.packing(cout, reduce)
    blocks = [f"block{b}" for b in BLOCKS if simd % b == 0]
    if structures == "block" and blocks:
        return blocks
    return [UNSTRUCTURED] + blocks


def layer_mask(layer, sparsity: float, structure: str) -> torch.Tensor:
    """Keep mask of a :class:`quant.fakequant.QLayer`'s weight (torch layout) pruned to
    ``sparsity`` with ``structure``, blocks aligned to the ROM's packing.

    The weights the current mask keeps rank above every weight it drops: a dropped weight
    still holds the value it had when it was dropped (its gradient is zero since), often
    larger than the fine-tuned kept ones, and ranking by that stale magnitude swapped
    6-14 % of a base model's mask and its validation top-1 from 96 % to 29 % (digits,
    re-pruned at its own sparsity).  So pruning further drops kept weights only, and
    pruning less revives dropped ones, the largest first."""
    kind, block = parse_structure(structure)
    magnitude = layer.weight.detach().abs().numpy()
    kept = layer.mask.detach().numpy() > 0
    weight = np.where(kept, magnitude + magnitude.max() + 1.0, magnitude)
    spec = layer.spec
    cout = weight.shape[0]
    lanes, simd = export.packing(cout, weight[0].size)
    mask = prune.tensor_keep_mask(weight, sparsity, structure=kind, lanes=lanes, simd=simd,
                                  block=block, in_shape=spec.in_shape if spec.type == "dense" else None)
    return torch.from_numpy(mask.astype(np.float64))


def prune_layer(layer, sparsity: float, structure: str = UNSTRUCTURED) -> None:
    """Set ``layer``'s mask to ``sparsity`` in ``structure`` (:func:`layer_mask`)."""
    layer.sparsity = float(sparsity)
    layer.mask.copy_(layer_mask(layer, sparsity, structure))


def pruned_weight_bits(layer, sparsity: float, structure: str, codes) -> int:
    """Weight ROM bits, in the smallest of ``codes``, of ``layer`` (a
    :class:`quant.fakequant.QLayer` with its weights as they are) pruned to ``sparsity``
    in ``structure`` (:func:`layer_mask`); the layer's mask is left as it was."""
    kept = layer.mask.clone()
    try:
        layer.mask.copy_(layer_mask(layer, sparsity, structure))
        W = layer.to_int_layer().W
    finally:
        layer.mask.copy_(kept)
    weights, wbits = weight_modes.parse(layer.spec.weights)
    lanes, simd = export.packing(*W.shape)
    return sparse_format.layer_bits(W, weights=weights, wbits=wbits, lanes=lanes, simd=simd,
                                    codes=codes)["bits"]


def solve_sparsity(bits_of, target: int) -> float:
    """The least sparsity in ``[0, MAX_SPARSITY]`` (to :data:`FILL_RESOLUTION`, rounded up)
    at which ``bits_of(sparsity)``, taken as not increasing, is at most ``target``;
    ``MAX_SPARSITY`` when none is (bisection: a step of :func:`quant.prune.keep_mask`
    drops ``round(sparsity * n)`` weights or blocks, so the bits fall in steps)."""
    if bits_of(0.0) <= target:
        return 0.0
    low, high = 0.0, MAX_SPARSITY
    if bits_of(high) > target:
        return high
    while high - low > FILL_RESOLUTION:
        middle = (low + high) / 2
        if bits_of(middle) <= target:
            high = middle
        else:
            low = middle
    return min(MAX_SPARSITY, np.ceil(high / FILL_RESOLUTION) * FILL_RESOLUTION)


def allot(target: int, ranges: list[tuple[int, int]], shares: list[float]) -> list[int]:
    """Split ``target`` bits over layers whose bits can range over ``ranges`` (``(least,
    most)``, in order): layer i but the last takes ``shares[i]`` of the way through what
    it can take with the later layers still able to take the rest, the last layer the
    rest.  So every share in ``[0, 1]`` gives a split that sums to ``target`` when any
    does; outside (a target above or below what the layers can take) each layer is held
    at its bound."""
    split, left = [], target
    for i, (least, most) in enumerate(ranges[:-1]):
        rest = ranges[i + 1:]
        low = max(least, left - sum(r[1] for r in rest))
        high = min(most, left - sum(r[0] for r in rest))
        if low > high:                   # nothing fits: a bound (the side it misses on)
            take = most if left - sum(r[1] for r in rest) > most else least
        else:
            take = int(round(low + shares[i] * (high - low)))
        split.append(take)
        left -= take
    least, most = ranges[-1]
    return split + [min(max(left, least), most)]


def model_bits(layers, codes) -> tuple[int, dict, dict]:
    """``(model bits, {layer: bits}, {layer: weight ROM choice})`` with every weight ROM in
    the smallest of ``codes`` (:func:`quant.sparse_format.layer_bits`) and the constant ROMs
    as written (scratch directory, sidecars)."""
    with tempfile.TemporaryDirectory(prefix="cnn_ip_bits_") as scratch:
        per_layer, choice = {}, {}
        for layer in layers:
            if layer.W is None:
                continue
            weights, wbits = weight_modes.parse(layer.weights)
            lanes, simd = export.packing(*layer.W.shape)
            best = sparse_format.layer_bits(layer.W, weights=weights, wbits=wbits, lanes=lanes,
                                            simd=simd, codes=codes)
            constants = export.write_constants(scratch, layer)
            per_layer[layer.name] = best["bits"] + sum(info["bits"] for info in constants)
            choice[layer.name] = {k: best[k] for k in ("coding", "block", "inner", "bits")}
    return sum(per_layer.values()), per_layer, choice


TEMPERATURES = np.exp(np.linspace(-3.0, 3.0, 61))    # e^-3 .. e^3, steps of e^0.1


@torch.no_grad()
def classifier_metrics(qnet, split) -> dict:
    """Top-1 accuracy, the smoothed accuracy ``measure`` and the cross-entropy ``loss`` of
    the fake-quant classifier on ``split`` (one forward pass).

    ``measure`` is the mean probability of the true class at the temperature (one of
    :data:`TEMPERATURES`) that minimises the cross-entropy of the scaled real logits: it
    rises and falls with how well every image is separated, not with the logits'
    overall scale, which a few epochs of fine-tuning after pruning leave too small
    (measured on digits: true-class probability 0.39 at a top-1 of 95.6 %, 0.92 with
    the temperature) and which the final fine-tuning restores."""
    qnet.eval()
    z = qnet(train.as_codes(split.x))
    logits = z * qnet.qlayers[qnet.specs[-1].name].logit_scale
    labels = torch.from_numpy(split.y)
    losses = [float(F.cross_entropy(logits * t, labels)) for t in TEMPERATURES]
    best = TEMPERATURES[int(np.argmin(losses))]
    probability = F.softmax(logits * best, dim=1).gather(1, labels.view(-1, 1)).mean()
    return {"accuracy": train.accuracy_of(z.numpy(), split.y), "measure": float(probability),
            "loss": float(F.cross_entropy(logits, labels)), "temperature": float(best)}


def accuracy_score(qnet, split) -> float:
    """Top-1 of the quantized model on ``split``."""
    return train.accuracy_of(train.fakequant_outputs(qnet, split.x), split.y)


class Evaluator:
    """Runs evaluations from one fixed base model (see module docstring).  ``objective``
    may be set after construction, once :meth:`measure` has given the base's values.
    ``score(qnet, split)``: a validation measure (higher is better) used both as the
    objective's measure and as the reported accuracy (a detector's mAP); without it the
    classifier's :func:`classifier_metrics`.  ``loss``: the fine-tuning loss given to
    :func:`quant.train.finetune` (default the classifier's cross-entropy), ``tuning`` its
    other keyword arguments (``lr``, ``batch``).  ``codes``: the weight codings the bits
    are counted in (default ``sparse_format.HARDWARE_CODES``); ``steps``: pruning steps
    of :meth:`apply`; ``search_tuning``: the evaluations' fine-tuning arguments (default
    ``tuning``); ``repeats``: fine-tunes an evaluation averages (module docstring; after
    an evaluation ``qnet`` holds the last of them)."""

    def __init__(self, qnet, data, auto_names, objective: Objective | None = None, *,
                 epochs: int, seed: int, score=None, loss=None, tuning: dict | None = None,
                 codes=None, steps: int = 1, search_tuning: dict | None = None,
                 repeats: int = 1, structures: str = "any"):
        if repeats < 1:
            raise ValueError(f"repeats: must be at least 1, got {repeats}")
        self.qnet, self.data, self.auto = qnet, data, list(auto_names)
        self.score, self.loss = score, loss
        self.tuning = dict(tuning or {})
        self.search_tuning = dict(self.tuning if search_tuning is None else search_tuning)
        self.codes = tuple(codes or sparse_format.HARDWARE_CODES)
        self.base = copy.deepcopy(qnet.state_dict())
        self.objective, self.epochs, self.seed, self.steps = objective, epochs, seed, steps
        self.repeats = repeats
        self.history: list[Evaluation] = []
        # size_budget_mode fill: the weight bits the auto layers may take in all (set by
        # quant.pipeline.searchable_base from the budget and the base's other ROMs)
        self.fill_bits: int | None = None
        self.fill_margin = 0             # bits the per-layer searches leave of fill_bits
        self._ranges: dict = {}
        layers = {layer.spec.name: layer for layer in qnet.weight_layers()}
        self.choices = {name: structure_choices(layers[name].weight.shape[0],
                                                layers[name].weight[0].numel(),
                                                layers[name].spec.weights, self.codes,
                                                structures)
                        for name in self.auto}

    def fill_to(self, size_budget: int, base: dict) -> None:
        """size_budget_mode fill: every point's auto layers take, in weight ROM bits, what
        ``size_budget`` leaves of the ``base`` model's (:meth:`measure`) other ROMs, the
        per-layer searches ``FILL_MARGIN`` of the budget less (:func:`search_space`).
        SizeBudgetError if that is less than the auto layers take at ``MAX_SPARSITY``."""
        weights = sum(base["codings"][n]["bits"] for n in self.auto)
        self.fill_bits = size_budget - (base["bits"] - weights)
        self.fill_margin = round(FILL_MARGIN * size_budget)
        least = sum(min(self.weight_range(n, c)[0] for c in self.choices[n]) for n in self.auto)
        if self.fill_bits - self.fill_margin < least:
            raise SizeBudgetError(
                f"size_budget: {size_budget} bits cannot be filled: with every auto layer "
                f"at sparsity {MAX_SPARSITY} the model takes "
                f"{size_budget - self.fill_bits + least} bits, and the per-layer searches "
                f"of size_budget_mode fill leave {self.fill_margin} bits of the budget")

    def weight_range(self, name: str, label: str) -> tuple[int, int]:
        """``(least, most)`` weight bits of auto layer ``name`` pruned in ``label`` from the
        base: at ``MAX_SPARSITY`` and at 0 (leaves ``self.qnet`` at the base)."""
        if (name, label) not in self._ranges:
            self.qnet.load_state_dict(self.base)
            layer = self.qnet.qlayers[name]
            self._ranges[name, label] = tuple(
                pruned_weight_bits(layer, s, label, self.codes) for s in (MAX_SPARSITY, 0.0))
        return self._ranges[name, label]

    def fill_sparsity(self, fill: list, structure: dict) -> dict:
        """The sparsity of each layer of ``fill`` (``[[names, weight bits], ...]``: the
        layers of a group share one sparsity) that brings the group's weight bits to its
        target or just below (:func:`solve_sparsity`), pruned from ``self.qnet``'s weights
        as they are."""
        layers = self.qnet.qlayers
        sparsity = {}
        for names, target in fill:
            def bits_of(s, names=names):
                return sum(pruned_weight_bits(layers[n], s, structure.get(n, UNSTRUCTURED),
                                              self.codes) for n in names)
            solved = round(float(solve_sparsity(bits_of, int(target))), 6)
            sparsity.update({n: solved for n in names})
        return sparsity

    def apply(self, sparsity: dict, epochs: int, desc: str = "fine-tuning",
              structure: dict | None = None, tuning: dict | None = None, loss=None,
              seed: int | None = None, fill: list | None = None):
        """Base model, pruned to ``sparsity`` with ``structure`` (unstructured where not
        given), fine-tuned ``epochs`` (``tuning``, ``loss``, ``seed``: instead of the
        evaluator's): left in ``self.qnet``.  With ``steps`` > 1 the
        pruning is gradual: the sparsity moves from the base's to the target in ``steps``
        equal steps (at most one an epoch), each followed by its share of the epochs.
        ``fill`` (size_budget_mode fill, :meth:`fill_sparsity`): the last step's sparsities
        are solved again on the weights as they are then, so the weight bits meet their
        targets exactly (the earlier steps head for ``sparsity``, solved on the base)."""
        self.qnet.load_state_dict(self.base)
        layers = [layer for layer in self.qnet.weight_layers() if layer.spec.name in sparsity]
        start = {layer.spec.name: 1.0 - float(layer.mask.mean()) for layer in layers}
        steps = max(1, min(self.steps, epochs))
        seed = self.seed if seed is None else seed
        done = 0
        for step in range(1, steps + 1):
            if fill and step == steps:
                sparsity = self.fill_sparsity(fill, structure or {})
            for layer in layers:
                name = layer.spec.name
                target = start[name] + (sparsity[name] - start[name]) * step / steps
                prune_layer(layer, target, (structure or {}).get(name, UNSTRUCTURED))
            share = epochs * step // steps - done
            done += share
            train.finetune(self.qnet, self.data, epochs=share, seed=seed + step - 1,
                           desc=desc, progress=False, loss=loss or self.loss,
                           **(self.tuning if tuning is None else tuning))

    def measure(self) -> dict:
        """The current model's ``bits``, ``searched_bits``, ``accuracy``, ``measure``,
        ``loss`` (validation), ``layers`` (integer) and ``codings``."""
        layers = self.qnet.int_layers()
        bits, per_layer, codings = model_bits(layers, self.codes)
        if self.score is None:
            metrics = classifier_metrics(self.qnet, self.data.val)
        else:
            value = self.score(self.qnet, self.data.val)
            metrics = {"accuracy": value, "measure": value, "loss": None, "temperature": None}
        return {**metrics, "bits": bits, "searched_bits": sum(per_layer[n] for n in self.auto),
                "layers": layers, "codings": codings}

    def __call__(self, search: str, sparsity: dict | None, structure: dict, *, run: int = 0,
                 confirms: int | None = None, fill: list | None = None) -> float:
        """Evaluate a point; ``run`` k > 0 (a confirmation run of record ``confirms``)
        fine-tunes with the seeds after those of runs 0..k-1.  ``fill`` instead of
        ``sparsity`` (size_budget_mode fill): the layers' weight bits, from which their
        sparsities are solved (:meth:`apply`; recorded as solved on the base)."""
        if fill:
            self.qnet.load_state_dict(self.base)
            sparsity = self.fill_sparsity(fill, structure)
        sparsity = {name: round(float(v), 6) for name, v in sparsity.items()}
        runs = []
        for r in range(self.repeats):
            self.apply(sparsity, self.epochs, structure=structure, tuning=self.search_tuning,
                       seed=self.seed + (run * self.repeats + r) * REPEAT_SEED_STRIDE,
                       fill=fill)
            m = self.measure()
            m["achieved"] = {l.name: layer_sparsity(l) for l in m["layers"] if l.W is not None}
            runs.append(m)
        mean = lambda key: None if runs[0][key] is None else (  # noqa: E731
            sum(m[key] for m in runs) / len(runs))
        # the mean of one value is that value exactly: repeats=1 records one fine-tune as is
        bits, searched = round(mean("bits")), round(mean("searched_bits"))
        value = self.objective(searched, mean("measure"), bits)
        achieved = {name: round(sum(m["achieved"][name] for m in runs) / len(runs), 6)
                    for name in runs[0]["achieved"]}
        rounded = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
        self.history.append(Evaluation(
            search, len(self.history), sparsity, dict(structure), achieved, bits, searched,
            rounded(mean("accuracy")), rounded(mean("measure")), rounded(mean("loss")),
            round(value, 6), confirms, fill=[[list(n), int(t)] for n, t in fill] if fill else None))
        return value


def search_space(evaluator: Evaluator, method: str):
    """skopt dimensions of ``method``, the function turning a point into ``(sparsity,
    structure, fill)`` over the ``auto`` layers, and the one turning a uniform point
    ``(sparsity, structure label)`` into a point of the space (a layer that cannot take
    the label: its first choice).

    With ``evaluator.fill_bits`` (size_budget_mode fill) a point has no sparsities:
    uniform's is a structure label alone, its sparsity the one that fills the budget; a
    per-layer point gives every auto layer but the last a share in ``[0, 1]`` of the way
    through the weight bits it can take (:func:`allot`), the last layer the rest, the
    whole ``FILL_MARGIN`` of the budget below uniform's; ``sparsity`` is then ``None``
    and ``fill`` the bits (``Evaluator.__call__``), and there is no ``encode``."""
    from skopt.space import Categorical, Real
    names, choices = evaluator.auto, evaluator.choices
    filled = evaluator.fill_bits is not None
    if method == "uniform":
        # one structure for all; a layer that cannot take it takes its first choice, as
        # in the Bayesian space's encode (so with structures="block" a layer that has
        # block sizes is never pruned unstructured)
        offered = sorted({c for n in names for c in choices[n]},
                         key=lambda c: parse_structure(c)[1] or 0)
        if filled:
            dims = [Categorical(offered)] if len(offered) > 1 else []

            def decode(x):
                label = str(x[0]) if x else offered[0]
                return None, {n: label if label in choices[n] else choices[n][0]
                              for n in names}, [[names, evaluator.fill_bits]]
            return dims, decode, None
        dims = [Real(0.0, MAX_SPARSITY)] + ([Categorical(offered)] if len(offered) > 1 else [])

        def decode(x):
            label = str(x[1]) if len(x) > 1 else offered[0]
            return ({n: x[0] for n in names},
                    {n: label if label in choices[n] else choices[n][0] for n in names}, None)

        def encode(sparsity, label):
            return [sparsity] + ([label if label in offered else offered[0]]
                                 if len(offered) > 1 else [])
        return dims, decode, encode
    dims, slots = [], []
    for i, name in enumerate(names):
        has_value = not filled or i < len(names) - 1      # filled: the last takes the rest
        if has_value:
            dims.append(Real(0.0, 1.0) if filled else Real(0.0, MAX_SPARSITY))
        if len(choices[name]) > 1:
            dims.append(Categorical(choices[name]))
        slots.append((name, len(choices[name]) > 1, has_value))

    def decode(x):
        values, structure, i = {}, {}, 0
        for name, has_choice, has_value in slots:
            if has_value:
                values[name] = x[i]
                i += 1
            structure[name] = str(x[i]) if has_choice else UNSTRUCTURED
            i += 1 if has_choice else 0
        if not filled:
            return values, structure, None
        target = evaluator.fill_bits - evaluator.fill_margin
        split = allot(target, [evaluator.weight_range(n, structure[n]) for n in names],
                      [values[n] for n in names[:-1]])
        return None, structure, [[[n], bits] for n, bits in zip(names, split)]

    def encode(sparsity, label):
        x = []
        for name, has_choice, _ in slots:
            x += [sparsity] + ([label if label in choices[name] else choices[name][0]]
                               if has_choice else [])
        return x
    return dims, decode, None if filled else encode


def check_evaluations(evaluations: int, confirm: int = 0, candidates: int = CANDIDATES,
                      warm=()) -> None:
    """ValueError unless :func:`run_searches` can spend ``evaluations`` as told: the
    ``warm`` points ``(sparsity in [0, MAX_SPARSITY], one of LABELS)``, ``confirm`` a
    multiple of ``candidates`` leaving the search at least ``candidates`` points (else
    fewer candidates get the confirmation runs and the method fewer evaluations) and at
    least one beyond the warm points."""
    for sparsity, label in warm:
        if not 0.0 <= sparsity <= MAX_SPARSITY or label not in LABELS:
            raise ValueError(f"warm: points (sparsity in [0, {MAX_SPARSITY}], one of "
                             f"{', '.join(LABELS)}), got ({sparsity}, {label!r})")
    if candidates < 1:
        raise ValueError(f"candidates: must be at least 1, got {candidates}")
    least = max(candidates if confirm else 1, len(warm) + 1)
    if confirm < 0 or confirm % candidates or evaluations - confirm < least:
        warm_note = f" ({len(warm)} warm points and one more)" if warm else ""
        raise ValueError(f"confirm: must be a multiple of {candidates} leaving at least "
                         f"{least} of evaluations ({evaluations}) to the search{warm_note}, "
                         f"got {confirm}")


def posterior_means(dims, xs, ys, seed: int) -> np.ndarray:
    """The posterior mean at each point ``xs`` (points of the skopt space ``dims``) of the
    Gaussian process ``gp_minimize`` fits to observations ``ys``: skopt's default GP
    (constant x Matern 5/2 kernel, per-dimension length scales, Gaussian noise fitted as
    a white kernel and left out of the prediction, ``normalize_y``) on the space
    normalised as ``gp_minimize`` normalises it (reals to [0, 1], categories one-hot),
    its hyperparameters fitted with ``random_state`` ``seed``."""
    from skopt.utils import cook_estimator, normalize_dimensions
    space = normalize_dimensions(copy.deepcopy(list(dims)))
    model = cook_estimator("GP", space=space, random_state=seed, noise="gaussian")
    points = space.transform([list(x) for x in xs])
    model.fit(points, np.asarray(ys, dtype=float))
    return np.asarray(model.predict(points), dtype=float)


def run_searches(evaluator: Evaluator, *, evaluations: int, seed: int, progress=True,
                 methods=("bayes", "uniform"), initial: int | None = None,
                 confirm: int = 0, candidates: int = CANDIDATES, warm=(),
                 recommend: str = "observed") -> dict:
    """Each search of ``methods`` (:data:`METHODS`), ``evaluations`` each.  ``initial``:
    the random points a Gaussian-process search starts from (default: one a dimension,
    at least 5, at most half the search's evaluations, at least 1).

    ``confirm``: evaluations of each method's budget spent, after its search, on
    confirmation runs instead of new points: its ``candidates`` distinct points of lowest
    objective are each evaluated ``confirm // candidates`` more times, every run a
    fine-tune with new seeds (:meth:`Evaluator.__call__`'s ``run``), so each candidate is
    judged by the mean of ``1 + confirm // candidates`` fine-tunes (:func:`best_of`).
    The search itself gets ``evaluations - confirm``.  ``recommend``: which points are
    the candidates, the lowest observed objectives (``"observed"``) or the lowest
    posterior means of :func:`posterior_means` fitted to the method's search evaluations
    as the GP saw them (capped at :data:`GP_CAP`; random search's too, in the Bayesian
    space), recorded as each search record's ``predicted`` (``"model"``).

    ``warm``: uniform points ``(sparsity, structure label)`` every method evaluates first,
    counted in its search's evaluations (a Gaussian-process search's initial design: these
    and then its random starting points, as many fewer as there are warm points, at least
    one).

    Returns ``{method: [records], "best": the Bayesian search's (or the first method's)
    best point (:func:`best_of`)}`` (records as dicts)."""
    from skopt import gp_minimize
    from skopt.space import Space
    from tqdm import tqdm

    for method in methods:
        if method not in METHODS:
            raise ValueError(f"methods: must be among {', '.join(METHODS)}, got {method!r}")
    if recommend not in RECOMMEND:
        raise ValueError(f"recommend: must be one of {', '.join(RECOMMEND)}, got {recommend!r}")
    check_evaluations(evaluations, confirm, candidates, warm)
    filled = evaluator.fill_bits is not None
    if filled and warm:
        raise ValueError("warm: uniform points have a sparsity, and with size_budget_mode "
                         "fill no point does")
    searched = evaluations - confirm
    results = {}
    bar = tqdm(total=len(methods) * evaluations, desc="sparsity search",
               disable=not progress, unit="eval")
    for method in methods:
        start = len(evaluator.history)
        dims, decode, encode = search_space(evaluator, method)
        x0 = [encode(float(sparsity), label) for sparsity, label in warm]
        seen = []                                   # (point, what the GP is shown)

        def func(x, method=method, decode=decode, seen=seen):
            sparsity, structure, fill = decode(x)
            value = min(evaluator(method, sparsity, structure, fill=fill), GP_CAP)
            seen.append((list(x), value))
            bar.update(1)
            return value

        if filled and (method == "uniform" or not dims):
            # no dimension but structures (or none at all): go round the points
            fill_rounds(evaluator, method, dims, decode, evaluations, bar)
            results[method] = [asdict(e) for e in evaluator.history[start:]]
            continue
        if method == "random":
            # skopt's dummy_minimize fails with this scikit-learn; Space.rvs draws the same
            for x in x0 + Space(dims).rvs(n_samples=searched - len(x0), random_state=seed):
                func(x)
        else:
            start_points = initial or max(1, min(max(5, len(dims)), searched // 2))
            # Latin hypercube starting points cover every dimension's range evenly.  When
            # the GP proposes a point it has seen, skopt evaluates a random one instead and
            # says so on stderr: part of the search, not news to the user (and not --quiet)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=SKOPT_REPEAT_WARNING,
                                        category=UserWarning)
                gp_minimize(func, dims, n_calls=searched, x0=x0 or None,
                            n_initial_points=max(1, start_points - len(x0)),
                            initial_point_generator="lhs", random_state=seed)
        chosen = []
        if confirm:
            records = evaluator.history[start:]
            if recommend == "model":
                means = posterior_means(dims, [x for x, _ in seen], [y for _, y in seen], seed)
                for record, mean in zip(records, means):
                    record.predicted = round(float(mean), 6)
            chosen = best_candidates(records, candidates,
                                     key="predicted" if recommend == "model" else "objective")
        for run in range(1, confirm // candidates + 1):
            for original in chosen:
                evaluator(method, original.sparsity, original.structure, run=run,
                          confirms=original.index, fill=original.fill)
                bar.update(1)
        results[method] = [asdict(e) for e in evaluator.history[start:]]
    bar.close()
    first = "bayes" if "bayes" in methods else methods[0]
    results["best"] = best_of(results[first])
    return results


def fill_rounds(evaluator: Evaluator, method: str, dims, decode, evaluations: int,
                bar) -> None:
    """Uniform sparsity filling the budget: its points are its structure labels alone, so
    its ``evaluations`` go round them, every round a fine-tune with new seeds (a label's
    later runs recorded as confirmation runs of its first), and its best point
    (:func:`best_of`) is the label of lowest mean objective over all its runs.  So does
    a per-layer search with nothing to search (one auto layer, one structure: ``dims``
    empty, one point)."""
    points = [[label] for label in dims[0].categories] if dims else [[]]
    first = {}
    for i in range(evaluations):
        k, run = i % len(points), i // len(points)
        _, structure, fill = decode(points[k])
        evaluator(method, None, structure, run=run, confirms=first.get(k), fill=fill)
        first.setdefault(k, evaluator.history[-1].index)
        bar.update(1)


def best_candidates(history: list[Evaluation], candidates: int,
                    key: str = "objective") -> list[Evaluation]:
    """The ``candidates`` distinct points of lowest ``key`` (``objective``, or
    ``predicted``: the GP's posterior mean) in ``history`` (a point's earliest record on a
    tie), lowest first."""
    chosen, seen = [], set()
    for record in sorted(history, key=lambda e: (getattr(e, key), e.index)):
        point = tuple(sorted(record.sparsity.items())), tuple(sorted(record.structure.items()))
        if point not in seen:
            seen.add(point)
            chosen.append(record)
    return chosen[:candidates]


MEANED = ("bits", "searched_bits", "val_accuracy", "val_measure", "val_loss", "objective")


def best_of(records: list[dict]) -> dict:
    """A method's best point.  Without confirmation runs: the record with the lowest
    objective (the earliest on a tie).  With them (:func:`run_searches`' ``confirm``):
    among the confirmed candidates, the lowest mean objective over a candidate's runs,
    returned as its first record with ``bits``, ``searched_bits`` (rounded),
    ``val_accuracy``, ``val_measure``, ``val_loss`` and ``objective`` the means over its
    runs and ``runs`` their number."""
    confirmed = {}
    for record in records:
        if record.get("confirms") is not None:
            confirmed.setdefault(record["confirms"], []).append(record)
    if not confirmed:
        return min(records, key=lambda e: (e["objective"], e["index"]))
    means = []
    for record in (r for r in records if r["index"] in confirmed):
        runs = [record] + confirmed[record["index"]]
        mean = {"runs": len(runs)}
        for key in MEANED:
            value = None if record[key] is None else sum(r[key] for r in runs) / len(runs)
            mean[key] = (round(value) if key in ("bits", "searched_bits")
                         else None if value is None else round(value, 6))
        means.append({**record, **mean})
    return min(means, key=lambda e: (e["objective"], e["index"]))
