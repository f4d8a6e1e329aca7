"""Sparsity/structure search: every record's numbers are what they claim, evaluations are
reproducible, block pruning lands in the code's blocks, and re-pruning a pruned model
keeps what it kept."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_ip.plan import parse_plan
from quant import reference, train
from quant.data import Dataset, Split, load_dataset
from quant.export import exact_model_bits, packing
from quant.pipeline import Settings, check_settings, distillation_loss
from quant.options import MAX_SPARSITY
from quant.search import (FILL_MARGIN, FILL_RESOLUTION, GP_CAP, REPEAT_SEED_STRIDE, Evaluator,
                          Objective, SizeBudgetError, allot, best_of, classifier_metrics,
                          layer_mask, model_bits, parse_structure, posterior_means,
                          prune_layer, pruned_weight_bits, run_searches, search_space,
                          solve_sparsity, structure_choices)
from quant.sparse_format import CODES, FIRST_CODES, HARDWARE_CODES, to_beats

PLAN = """
name: t
input: {channels: 1, height: 8, width: 8}
dataset: digits
layers:
  - {type: conv, out: 4, k: 3, pad: 1, weights: ternary, act_bits: 4, sparsity: auto}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: int4, sparsity: auto}
"""
AUTO = ["conv0", "dense2"]


@pytest.fixture(scope="module")
def trained():
    full = load_dataset()
    cut = lambda split, n: Split(split.x[:n], split.y[:n])  # noqa: E731
    data = Dataset("digits", cut(full.train, 160), cut(full.val, 80), cut(full.test, 80), 10)
    specs = parse_plan(PLAN).layers
    with train.deterministic(3):
        net = train.train_fp32(specs, data, epochs=2, seed=3, progress=False)
        qnet = train.quantize_net(specs, net, train.activation_scales(net, data.train.x), mbits=8)
    return qnet, data, net


def test_search_records_are_what_they_claim_and_reproducible(trained):
    qnet, data, _ = trained
    with train.deterministic(3):
        evaluator = Evaluator(qnet, data, AUTO, epochs=1, seed=3, codes=CODES)
        base = evaluator.measure()
        evaluator.objective = Objective(base["searched_bits"], base["measure"], accuracy_budget=0.5)
        result = run_searches(evaluator, evaluations=3, seed=3, progress=False,
                              methods=("bayes", "uniform", "random"))
        last = evaluator.history[-1]
        layers = qnet.int_layers()
        # the last evaluation's model is still in qnet: its bits are recomputable, and the
        # written (/1) ROMs are never smaller than the smallest of every code
        assert model_bits(layers, CODES)[0] == last.bits <= exact_model_bits(layers)[0]
        evaluator("again", result["best"]["sparsity"], result["best"]["structure"])
    assert evaluator.choices == {"conv0": ["unstructured"],
                                 "dense2": ["unstructured", "block4", "block8", "block16"]}
    sizes = {layer.spec.name: layer.weight.numel() for layer in qnet.weight_layers()}
    assert [len(result[m]) for m in ("bayes", "uniform", "random")] == [3, 3, 3]
    for record in result["uniform"]:
        assert len(set(record["sparsity"].values())) == 1
        assert record["structure"]["conv0"] == "unstructured"
    for record in result["bayes"] + result["uniform"] + result["random"]:
        assert np.isclose(record["objective"], atol=1e-6,
                          b=evaluator.objective(record["searched_bits"], record["val_measure"]))
        assert record["searched_bits"] <= record["bits"]
        assert 0 < record["val_measure"] < 1 and record["val_loss"] >= -np.log(record["val_measure"])
        for name, target in record["sparsity"].items():         # pruned as asked
            unit = parse_structure(record["structure"][name])[1] or 1
            asked = round(target * sizes[name] / unit) * unit / sizes[name]
            assert record["achieved"][name] >= asked - 1e-6
    assert result["best"] in result["bayes"]
    assert result["best"]["objective"] == min(r["objective"] for r in result["bayes"])
    # the same point from the same base gives the same model and numbers
    replay = evaluator.history[-1]
    assert (replay.objective, replay.bits, replay.val_accuracy, replay.val_measure) == (
        result["best"]["objective"], result["best"]["bits"], result["best"]["val_accuracy"],
        result["best"]["val_measure"])


def test_repeated_evaluation_is_the_mean_of_independent_fine_tunes(trained):
    """repeats=2: the record holds the mean of two fine-tunes of the point from the same
    base, seeded seed and seed + REPEAT_SEED_STRIDE, each redone here by hand."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    point = {"conv0": 0.3, "dense2": 0.6}
    try:
        runs = []
        with train.deterministic(3):
            for seed in (3, 3 + REPEAT_SEED_STRIDE):
                qnet.load_state_dict(start)
                for name, target in point.items():
                    prune_layer(qnet.qlayers[name], target)
                train.finetune(qnet, data, epochs=1, seed=seed, progress=False, lr=0.03)
                runs.append({**classifier_metrics(qnet, data.val),
                             "bits": model_bits(qnet.int_layers(), CODES)[0]})
            qnet.load_state_dict(start)
            evaluator = Evaluator(qnet, data, AUTO, epochs=1, seed=3, codes=CODES, repeats=2,
                                  tuning={"lr": 0.03})
            ref = evaluator.measure()
            # a budget of -100 points: the objective moves with the measure at every point
            evaluator.objective = Objective(ref["searched_bits"], ref["measure"],
                                            accuracy_budget=-100)
            value = evaluator("t", point, {n: "unstructured" for n in AUTO})
    finally:
        qnet.load_state_dict(start)
    for key in ("measure", "loss"):                       # the two fine-tunes differ
        assert abs(runs[0][key] - runs[1][key]) > 1e-4, key
    record = evaluator.history[-1]
    for key, got in (("accuracy", record.val_accuracy), ("measure", record.val_measure),
                     ("loss", record.val_loss)):
        assert got == pytest.approx((runs[0][key] + runs[1][key]) / 2, abs=6e-7), key
    # the bits too: a kept weight may round to code 0, the constant ROMs follow the weights
    assert record.bits == round((runs[0]["bits"] + runs[1]["bits"]) / 2)
    mean_measure = (runs[0]["measure"] + runs[1]["measure"]) / 2
    assert value == pytest.approx(record.searched_bits / ref["searched_bits"]
                                  + 100 * (ref["measure"] - mean_measure) + 100, abs=1e-9)
    with pytest.raises(ValueError, match="repeats"):
        Evaluator(qnet, data, AUTO, epochs=1, seed=3, repeats=0)


FAST = {"lr": 0.03}


def fast_evaluator(qnet, data, accuracy_budget: float) -> Evaluator:
    """An evaluator whose fine-tune moves the model (the fixture's net is near chance,
    where every 1-epoch fine-tune at the default rate gives the same measure)."""
    evaluator = Evaluator(qnet, data, AUTO, epochs=1, seed=3, codes=CODES, tuning=FAST)
    base = evaluator.measure()
    evaluator.objective = Objective(base["searched_bits"], base["measure"],
                                    accuracy_budget=accuracy_budget)
    return evaluator


def test_confirmation_reevaluates_the_best_candidates_with_new_seeds(trained):
    """confirm=2 of 5 evaluations, 2 candidates: 3 search points, then each of the two of
    lowest objective once more with the next seeds; the best point is the lower mean of
    a candidate's two runs, and a confirmation run equals that point evaluated alone by
    an evaluator seeded seed + REPEAT_SEED_STRIDE."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator = fast_evaluator(qnet, data, accuracy_budget=-100)
            result = run_searches(evaluator, evaluations=5, seed=3, progress=False,
                                  methods=("uniform",), confirm=2, candidates=2)
            records = result["uniform"]
            first = sorted(records[:3], key=lambda e: (e["objective"], e["index"]))[:2]
            assert [r["confirms"] for r in records] == [None] * 3 + [e["index"] for e in first]
            for again, original in zip(records[3:], first):
                assert (again["sparsity"], again["structure"]) == (original["sparsity"],
                                                                   original["structure"])
                assert again["val_measure"] != original["val_measure"]   # a new fine-tune
            qnet.load_state_dict(start)
            alone = Evaluator(qnet, data, AUTO, epochs=1, seed=3 + REPEAT_SEED_STRIDE, codes=CODES,
                              tuning=FAST)
            alone.objective = evaluator.objective
            alone("t", records[3]["sparsity"], records[3]["structure"])
            assert alone.history[-1].val_measure == records[3]["val_measure"]
            assert alone.history[-1].bits == records[3]["bits"]
    finally:
        qnet.load_state_dict(start)
    means = [(original["objective"] + again["objective"]) / 2
             for original, again in zip(first, records[3:])]
    pick = int(np.argmin(means))
    best = result["best"]
    assert best["index"] == first[pick]["index"] and best["runs"] == 2
    assert best["objective"] == pytest.approx(means[pick], abs=1e-6)
    for key in ("val_accuracy", "val_measure"):
        assert best[key] == pytest.approx((first[pick][key] + records[3 + pick][key]) / 2,
                                          abs=1e-6)
    assert best["bits"] == round((first[pick]["bits"] + records[3 + pick]["bits"]) / 2)
    assert best_of(records[:3]) == first[0]                # without confirmation runs
    with pytest.raises(ValueError, match="confirm"):
        run_searches(evaluator, evaluations=5, seed=3, progress=False, confirm=3, candidates=2)
    # one search point cannot give two candidates their confirmation runs
    with pytest.raises(ValueError, match="leaving at least 2 of evaluations"):
        run_searches(evaluator, evaluations=3, seed=3, progress=False, confirm=2, candidates=2)
    with pytest.raises(ValueError, match=r"^candidates: must be at least 1, got 0$"):
        run_searches(evaluator, evaluations=5, seed=3, progress=False, confirm=2, candidates=0)


def test_posterior_mean_looks_past_a_lucky_observation():
    """A noisy bowl with one lucky outlier far from its bottom: the lowest observation is
    the outlier, the lowest posterior mean is at the bottom."""
    from skopt.space import Real
    xs = [[x] for x in np.linspace(0.0, 0.95, 20)]
    noise = np.random.RandomState(0).randn(20)
    ys = [(x[0] - 0.5) ** 2 + 0.03 * n for x, n in zip(xs, noise)]
    ys[17] = -0.06
    means = posterior_means([Real(0.0, 0.95)], xs, ys, seed=3)
    assert int(np.argmin(ys)) == 17
    assert abs(xs[int(np.argmin(means))][0] - 0.5) <= 0.1
    assert means[17] > 0.05


def test_model_recommendation_confirms_the_lowest_posterior_means(trained):
    """recommend="model": every search record carries the GP's posterior mean of the
    objective the GP saw, and the confirmation runs re-evaluate the two distinct points of
    lowest posterior mean; every method alike (random search's model too)."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator = fast_evaluator(qnet, data, accuracy_budget=100)
            result = run_searches(evaluator, evaluations=6, seed=3, progress=False,
                                  methods=("uniform", "random"), confirm=2, candidates=2,
                                  recommend="model")
            with pytest.raises(ValueError, match="recommend"):
                run_searches(evaluator, evaluations=6, seed=3, progress=False,
                             recommend="mean")
    finally:
        qnet.load_state_dict(start)
    for method in ("uniform", "random"):
        records = result[method]
        searched = records[:4]
        assert all(r["predicted"] is not None for r in searched), method
        assert all(r["predicted"] is None for r in records[4:]), method
        chosen = sorted(searched, key=lambda r: (r["predicted"], r["index"]))
        distinct = []
        for r in chosen:
            if all((r["sparsity"], r["structure"]) != (d["sparsity"], d["structure"])
                   for d in distinct):
                distinct.append(r)
        assert [r["confirms"] for r in records[4:]] == [d["index"] for d in distinct[:2]]
        capped = [min(r["objective"], GP_CAP) for r in searched]
        assert len(set(capped)) >= 3, method            # a model of something
    # random search's model: the GP of the Bayesian space fitted to the capped objective
    dims, _, _ = search_space(evaluator, "bayes")   # conv0's sparsity, dense2's, its structure
    searched = result["random"][:4]
    xs = [[r["sparsity"]["conv0"], r["sparsity"]["dense2"], r["structure"]["dense2"]]
          for r in searched]
    means = posterior_means(dims, xs, [min(r["objective"], GP_CAP) for r in searched], seed=3)
    assert [r["predicted"] for r in searched] == pytest.approx(means, abs=1e-5)


def test_warm_points_come_first_in_every_method(trained):
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator = Evaluator(qnet, data, AUTO, epochs=1, seed=3, codes=CODES)
            base = evaluator.measure()
            evaluator.objective = Objective(base["searched_bits"], base["measure"])
            result = run_searches(evaluator, evaluations=3, seed=3, progress=False,
                                  methods=("bayes", "uniform", "random"),
                                  warm=[(0.5, "block8"), (0.25, "block4")])
    finally:
        qnet.load_state_dict(start)
    for method in ("bayes", "uniform", "random"):
        records = result[method]
        assert len(records) == 3
        for record, (target, label) in zip(records, [(0.5, "block8"), (0.25, "block4")]):
            assert record["sparsity"] == {"conv0": target, "dense2": target}, method
            # conv0 has no block structure (simd 1): unstructured
            assert record["structure"] == {"conv0": "unstructured", "dense2": label}, method
    with pytest.raises(ValueError, match="warm"):
        run_searches(evaluator, evaluations=3, seed=3, progress=False, confirm=1,
                     candidates=1, warm=[(0.5, "block8"), (0.25, "block4")])
    # a misspelt structure or a sparsity out of range: refused before any evaluation
    done = len(evaluator.history)
    for point in [(0.5, "blok8"), (0.99, "block8"), (-0.1, "unstructured")]:
        with pytest.raises(ValueError, match="warm: points"):
            run_searches(evaluator, evaluations=3, seed=3, progress=False, warm=[point])
    assert len(evaluator.history) == done


def test_a_structure_a_layer_cannot_take_is_its_first_choice_in_every_space():
    """structures="block": layer a has blocks of 4 and 8 only, b all three sizes.  A uniform
    point in blocks of 16 (searched, or warm) prunes a in blocks of 4, not unstructured,
    and the Bayesian space encodes the same warm point the same way."""
    evaluator = SimpleNamespace(auto=["a", "b"], choices={"a": ["block4", "block8"],
                                                          "b": ["block4", "block8", "block16"]},
                                fill_bits=None)
    _, uniform, uniform_encode = search_space(evaluator, "uniform")
    _, bayes, bayes_encode = search_space(evaluator, "bayes")
    for label in ("block4", "block8", "block16"):
        want = {"a": "block4" if label == "block16" else label, "b": label}
        assert uniform([0.5, label]) == ({"a": 0.5, "b": 0.5}, want, None)
        assert uniform(uniform_encode(0.5, label)) == bayes(bayes_encode(0.5, label)) == \
            ({"a": 0.5, "b": 0.5}, want, None)
    # one structure offered: the uniform space has no structure dimension, yet blocks
    evaluator.choices = {"a": ["block4"], "b": ["block4"]}
    dims, uniform, _ = search_space(evaluator, "uniform")
    assert len(dims) == 1 and uniform([0.3])[1] == {"a": "block4", "b": "block4"}


def test_a_filled_space_gives_shares_and_structures_and_bits_that_fill_the_budget():
    """size_budget_mode fill: uniform's point is its structure alone, both layers one
    group at the whole fill; a per-layer point is a's share and both structures, a taking
    that share of the way through its range (given b's), b the rest, the margin less."""
    ranges = {("a", "block4"): (100, 900), ("a", "block8"): (60, 900),
              ("b", "block4"): (400, 4000), ("b", "block8"): (300, 4000)}
    evaluator = SimpleNamespace(auto=["a", "b"], choices={"a": ["block4", "block8"],
                                                          "b": ["block4", "block8"]},
                                fill_bits=3000, fill_margin=100,
                                weight_range=lambda name, label: ranges[name, label])
    dims, uniform, encode = search_space(evaluator, "uniform")
    assert [d.categories for d in dims] == [("block4", "block8")] and encode is None
    assert uniform(["block8"]) == (None, {"a": "block8", "b": "block8"}, [[["a", "b"], 3000]])
    dims, bayes, encode = search_space(evaluator, "bayes")
    assert [type(d).__name__ for d in dims] == ["Real", "Categorical", "Categorical"]
    assert (dims[0].low, dims[0].high) == (0.0, 1.0) and encode is None
    # 2,900 bits: a between 100 (b at 2,800) and 900 (b at 2,000)
    for share, a in ((0.0, 100), (0.5, 500), (1.0, 900)):
        assert bayes([share, "block4", "block4"]) == (
            None, {"a": "block4", "b": "block4"}, [[["a"], a], [["b"], 2900 - a]])
    # b's range bounds a's: with b at most 4,000 bits a needs 0 ... here at least 60
    assert bayes([0.0, "block8", "block8"])[2] == [[["a"], 60], [["b"], 2840]]


def test_allot_splits_a_target_within_every_layers_range():
    ranges = [(10, 50), (20, 80)]
    assert allot(100, ranges, [0.0]) == [20, 80]           # a at least 100 - 80
    assert allot(100, ranges, [1.0]) == [50, 50]
    assert allot(100, ranges, [0.5]) == [35, 65]
    assert allot(500, ranges, [0.5]) == [50, 80]           # more than both can take
    assert allot(5, ranges, [0.5]) == [10, 20]             # less than both must take
    three = [(10, 50), (20, 80), (0, 30)]
    for shares in ([0.0, 0.0], [0.3, 0.9], [1.0, 1.0], [0.7, 0.1]):
        split = allot(120, three, shares)
        assert sum(split) == 120, shares
        assert all(low <= bits <= high for bits, (low, high) in zip(split, three)), shares


def test_solve_sparsity_finds_the_least_sparsity_that_fits():
    def bits_of(s):                                        # a step every 1 % of sparsity
        return 1000 - 10 * int(np.floor(round(s * 100, 9)))
    solved = solve_sparsity(bits_of, 500)
    # the least to the resolution, rounded up to it (records keep 6 decimals)
    assert bits_of(solved) <= 500 < bits_of(solved - 2 * FILL_RESOLUTION)
    assert solved == pytest.approx(0.5, abs=2 * FILL_RESOLUTION)
    assert solve_sparsity(bits_of, 1000) == 0.0            # fits unpruned
    assert solve_sparsity(bits_of, 10) == MAX_SPARSITY     # never fits: the most it may


def filled_evaluator(qnet, data, cut: float):
    """An evaluator of size_budget_mode fill, the budget ``cut`` of the auto layers' base
    weight bits below the base model (``steps`` 2: the last pruning step solves again)."""
    evaluator = Evaluator(qnet, data, AUTO, epochs=2, seed=3, codes=CODES, tuning=FAST,
                          steps=2)
    base = evaluator.measure()
    weights = sum(base["codings"][n]["bits"] for n in AUTO)
    budget = base["bits"] - round(cut * weights)
    evaluator.objective = Objective(base["searched_bits"], base["measure"], size_budget=budget,
                                    fixed_bits=base["bits"] - base["searched_bits"], fill=True)
    evaluator.fill_to(budget, base)
    return evaluator, base, budget


def test_filled_points_take_the_bits_they_are_given(trained):
    """Pruned with no fine-tune after, a filled point's layers hold their weight bits or
    just below, and one step of sparsity less would not fit."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator, base, budget = filled_evaluator(qnet, data, cut=0.4)
            assert evaluator.fill_bits == budget - (base["bits"] - sum(
                base["codings"][n]["bits"] for n in AUTO))
            assert evaluator.fill_margin == round(FILL_MARGIN * budget)
            structure = {"conv0": "unstructured", "dense2": "block8"}
            middle = {n: sum(evaluator.weight_range(n, structure[n])) // 2 for n in AUTO}
            for fill in ([[["conv0"], middle["conv0"]], [["dense2"], middle["dense2"]]],
                         [[AUTO, sum(middle.values())]]):
                evaluator.apply({n: 0.0 for n in AUTO}, 0, structure=structure, fill=fill)
                layers = {layer.spec.name: layer for layer in qnet.weight_layers()}
                _, _, codings = model_bits(qnet.int_layers(), CODES)
                for names, target in fill:
                    assert sum(codings[n]["bits"] for n in names) <= target
                    s = 1.0 - float(layers[names[0]].mask.mean())
                    # shared by the group; a step less (from the base) would not fit
                    assert all(abs(1.0 - float(layers[n].mask.mean()) - s) < 0.03
                               for n in names)
                qnet.load_state_dict(evaluator.base)
                solved = evaluator.fill_sparsity(fill, structure)
                for names, target in fill:
                    less = sum(pruned_weight_bits(layers[n], solved[n] - 2 * FILL_RESOLUTION,
                                                  structure[n], CODES) for n in names)
                    assert less > target or solved[names[0]] == 0.0
            # a budget the auto layers cannot get down to: one line, at its setting
            with pytest.raises(SizeBudgetError, match=r"^size_budget: \d+ bits cannot be filled"):
                evaluator.fill_to(base["bits"] - sum(base["codings"][n]["bits"] for n in AUTO),
                                  base)
    finally:
        qnet.load_state_dict(start)


def test_a_filled_search_fills_the_budget_in_every_method(trained):
    """Per-layer points split the fill less the margin, uniform's take it all as one group
    and go round its structures with new seeds; the objective is the measure lost."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator, base, budget = filled_evaluator(qnet, data, cut=0.4)
            result = run_searches(evaluator, evaluations=6, seed=3, progress=False,
                                  methods=("bayes", "uniform", "random"), confirm=2,
                                  candidates=1)
            qnet.load_state_dict(evaluator.base)
            for method in ("bayes", "random"):
                for record in result[method]:
                    assert [names for names, _ in record["fill"]] == [["conv0"], ["dense2"]]
                    least = [evaluator.weight_range(n, record["structure"][n])[0] for n in AUTO]
                    bits = [bits for _, bits in record["fill"]]
                    if sum(least) <= evaluator.fill_bits - evaluator.fill_margin:
                        assert sum(bits) == evaluator.fill_bits - evaluator.fill_margin
                    else:                      # structures that cannot get down to it
                        assert bits == least
                    # recorded: the sparsities solved on the base
                    assert record["sparsity"] == evaluator.fill_sparsity(record["fill"],
                                                                         record["structure"])
                assert [r["confirms"] for r in result[method]][-2:] == [
                    best_of(result[method])["index"]] * 2
        with pytest.raises(ValueError, match="^warm: .*size_budget_mode fill"):
            run_searches(evaluator, evaluations=6, seed=3, progress=False,
                         warm=[(0.5, "block8")])
    finally:
        qnet.load_state_dict(start)
    records = result["uniform"]
    labels = ["unstructured", "block4", "block8", "block16"]   # dense2's; conv0 unstructured
    assert [r["structure"]["dense2"] for r in records] == labels + labels[:2]
    assert [r["confirms"] for r in records] == [None] * 4 + [records[0]["index"],
                                                         records[1]["index"]]
    for record in records:
        assert record["fill"] == [[AUTO, evaluator.fill_bits]]
        assert len(set(record["sparsity"].values())) == 1
    # a label's second run is a new fine-tune of the same point
    assert records[4]["val_measure"] != records[0]["val_measure"]
    assert records[4]["sparsity"] == records[0]["sparsity"]
    for record in records + result["bayes"] + result["random"]:
        over = max(0.0, 100 * (record["bits"] - budget * (1 + FILL_MARGIN)) / budget)
        assert record["objective"] == pytest.approx(
            base["measure"] - record["val_measure"] + over, abs=1e-6)
    assert evaluator.objective.describe().startswith(
        f"minimise {base['measure']:.6f} - val_accuracy + 1.0 * max(0, 100*(model_bits - "
        f"{budget * (1 + FILL_MARGIN):g})/{budget}) over the pruning structures")


def test_a_filled_search_with_nothing_to_search_goes_round_its_one_point(trained):
    """One auto layer with one structure (conv0: unstructured only): the per-layer space
    has no dimension, so every method evaluates the one filled point with new seeds."""
    qnet, data, _ = trained
    start = copy.deepcopy(qnet.state_dict())
    try:
        with train.deterministic(3):
            evaluator = Evaluator(qnet, data, ["conv0"], epochs=1, seed=3, codes=CODES,
                                  tuning=FAST)
            base = evaluator.measure()
            budget = base["bits"] - 4
            evaluator.objective = Objective(base["searched_bits"], base["measure"],
                                            size_budget=budget, fill=True,
                                            fixed_bits=base["bits"] - base["searched_bits"])
            evaluator.fill_to(budget, base)
            result = run_searches(evaluator, evaluations=3, seed=3, progress=False,
                                  methods=("bayes", "random"))
    finally:
        qnet.load_state_dict(start)
    for method in ("bayes", "random"):
        records = result[method]
        assert [r["confirms"] for r in records] == [None] + [records[0]["index"]] * 2
        assert len({r["val_measure"] for r in records}) > 1           # new fine-tunes
        assert all(r["fill"] == [[["conv0"], evaluator.fill_bits - evaluator.fill_margin]]
                   for r in records)


def test_a_filled_objective_is_the_measure_lost_and_a_penalty_beyond_the_margin():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, size_budget=2000, fixed_bits=600,
                          fill=True, weight=0.5, size_exponent=2.0)
    assert objective(1400, 0.93) == pytest.approx(0.02)          # the bits play no part
    assert objective(900, 0.95) == pytest.approx(0.0)
    # fine-tuning may add a little to the constant ROMs: the margin's 1 % is free
    assert objective(1400, 0.95, model_bits=2020) == pytest.approx(0.0)
    assert objective(1400, 0.95, model_bits=2040) == pytest.approx(1.0)   # 1 % beyond it
    with pytest.raises(ValueError, match="^size_budget_mode: fill needs a size_budget$"):
        Objective(1000, 0.95, fill=True)


def test_block_structure_zeroes_whole_blocks_of_the_rom_beat(trained):
    qnet, _, _ = trained
    layer = qnet.qlayers["dense2"]
    saved = layer.state_dict()
    try:
        layer.mask.fill_(1.0)                       # unpruned (the fixture is shared)
        prune_layer(layer, 0.8, "block8")
        W = layer.to_int_layer().W                  # (Cout, R) in the ROM's reduction order
        blocks = to_beats(W, *packing(*W.shape)).reshape(-1, 8)
        empty = ~blocks.any(axis=1)
        assert empty.sum() == round(0.8 * blocks.shape[0])
        block_bits = model_bits([layer.to_int_layer()], CODES)[2]["dense2"]
        assert block_bits["coding"] == "block"
        layer.mask.fill_(1.0)
        prune_layer(layer, 0.8, "unstructured")
        assert model_bits([layer.to_int_layer()], CODES)[2]["dense2"]["bits"] > block_bits["bits"]
    finally:
        layer.load_state_dict(saved)


def test_repruning_ranks_kept_weights_above_dropped_ones(trained):
    qnet, _, _ = trained
    layer = qnet.qlayers["dense2"]
    saved = layer.state_dict()
    try:
        layer.mask.fill_(1.0)
        prune_layer(layer, 0.5)
        kept = layer.mask.clone().bool()
        with torch.no_grad():                       # dropped weights keep stale, large values
            layer.weight[~kept] = layer.weight[~kept].sign() * 10 + layer.weight[~kept]
        assert torch.equal(layer_mask(layer, 0.5, "unstructured").bool(), kept)
        more = layer_mask(layer, 0.7, "unstructured").bool()
        assert not (more & ~kept).any() and more.sum() == round(0.3 * kept.numel())
        fewer = layer_mask(layer, 0.3, "unstructured").bool()
        revived = fewer & ~kept
        assert (fewer >= kept).all() and revived.sum() == round(0.2 * kept.numel())
        stale = layer.weight.detach().abs()
        assert stale[revived].min() >= stale[~kept & ~fewer].max()
    finally:
        layer.load_state_dict(saved)


def test_model_bits_in_hardware_codes_are_the_written_bits(trained):
    qnet, _, _ = trained
    layers = qnet.int_layers()
    total, per_layer, choice = model_bits(layers, HARDWARE_CODES)
    assert (total, per_layer) == exact_model_bits(layers)
    # counted in /1's codings only, every layer takes one of them and none is smaller
    first_total, first_layers, first_choice = model_bits(layers, FIRST_CODES)
    assert all(c["coding"] in FIRST_CODES for c in first_choice.values())
    assert all(first_layers[name] >= per_layer[name] for name in per_layer)
    assert first_total >= total


def test_classifier_metrics_match_the_integer_model(trained):
    qnet, data, _ = trained
    metrics = classifier_metrics(qnet, data.val)
    z = reference.run(qnet.int_layers(), data.val.x)
    assert metrics["accuracy"] == train.accuracy_of(z, data.val.y)
    assert 0 < metrics["measure"] < 1 and metrics["loss"] >= -np.log(metrics["measure"])


def test_structure_choices_follow_the_codes_and_the_packing():
    blocks = ["block4", "block8", "block16"]
    assert structure_choices(32, 144, "ternary", CODES) == ["unstructured"] + blocks
    assert structure_choices(32, 144, "ternary", CODES, "block") == blocks
    assert structure_choices(32, 24, "int", CODES, "block") == ["block4", "block8"]
    for structures in ("any", "block"):
        assert structure_choices(16, 9, "ternary", CODES, structures) == ["unstructured"]  # simd 1
        assert structure_choices(32, 144, "ternary", ("dense", "masked"),
                                 structures) == ["unstructured"]                          # /1
        assert structure_choices(32, 144, "binary", CODES, structures) == ["unstructured"]
    with pytest.raises(ValueError, match="structures"):
        structure_choices(32, 144, "ternary", CODES, "blocks")


def test_objective_penalises_only_beyond_budget():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, accuracy_budget=1.0, penalty=2.0)
    assert objective(500, 0.95) == 0.5
    assert np.isclose(objective(500, 0.945), 0.5)               # 0.5 points: within budget
    assert np.isclose(objective(500, 0.93), 0.5 + 2.0 * 1.0)    # 2 points: 1 beyond


def test_objective_weight_prices_every_point_lost_or_gained():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, accuracy_budget=0.0, penalty=1.0,
                          weight=0.1)
    assert np.isclose(objective(500, 0.95), 0.5)
    assert np.isclose(objective(500, 0.96), 0.5 - 0.1)            # 1 point above the base
    assert np.isclose(objective(500, 0.93), 0.5 + 0.1 * 2 + 1.0 * 2)
    assert "0.1 * 100*(0.950000 - val_accuracy)" in objective.describe()
    assert "0.0 *" not in Objective(1000, 0.95).describe()      # weight 0: the former text


def test_objective_size_exponent_powers_the_relative_size_only():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, accuracy_budget=0.0, weight=0.1,
                          size_exponent=2.0)
    assert np.isclose(objective(500, 0.95), 0.25)
    assert np.isclose(objective(800, 0.94), 0.64 + 0.1 + 1.0)
    assert "(searched_bits/1000)^2 + 0.1 *" in objective.describe()
    assert "^" not in Objective(1000, 0.95).describe()          # exponent 1: the former text


def test_chebyshev_objective_is_the_larger_term_plus_a_little_of_both():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, accuracy_budget=3.0, weight=0.1,
                          scalarization="chebyshev", utopia=1.5)
    # no drop: L = 0.1 * 1.5 = 0.15 below S = 0.4, so S + 0.05 * (0.4 + 0.15)
    assert np.isclose(objective(400, 0.95), 0.4275)
    # 2.5 points lost: L = 0.4 = S, the ray's crossing
    assert np.isclose(objective(400, 0.925), 0.4 + 0.05 * 0.8)
    # smaller but 4.5 points lost: L = 0.6 rules, and 1.5 points beyond the budget
    assert np.isclose(objective(200, 0.905), 0.6 + 0.05 * 0.8 + 1.5)
    # a point better on both axes scores lower (what the max is for)
    assert objective(390, 0.951) < objective(400, 0.95)
    assert objective(300, 0.95) < objective(400, 0.95)
    # better on the axis the max does not take: the 0.05 term breaks the tie (size rules
    # at 400 bits, L = 0.05 or 0.15; accuracy rules at 90 or 100 bits, L = 0.15)
    assert np.isclose(objective(400, 0.96), 0.4 + 0.05 * 0.45)
    assert objective(400, 0.96) < objective(400, 0.95)
    assert np.isclose(objective(90, 0.95), 0.15 + 0.05 * 0.24)
    assert objective(90, 0.95) < objective(100, 0.95)
    assert objective.describe().startswith(
        "minimise max(S, L) + 0.05 * (S + L) + 1.0 * max(0, 100*(0.950000 - val_accuracy) - "
        "3.0) with S = searched_bits/1000, L = 0.1 * (100*(0.950000 - val_accuracy) + 1.5), "
        "over the ")


def test_size_budget_charges_each_percent_the_model_exceeds_it():
    # searched layers 1000 bits at the base, the others 600; the model may take 1500
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, accuracy_budget=100.0, weight=0.02,
                          size_budget=1500, fixed_bits=600)
    assert np.isclose(objective(800, 0.95), 0.8)                  # 1400 bits: fits
    assert np.isclose(objective(900, 0.94), 0.9 + 0.02)           # 1500: exactly the budget
    assert np.isclose(objective(915, 0.95), 0.915 + 1.0)          # 1515: 1 % over
    assert np.isclose(objective(1200, 0.95), 1.2 + 20.0)          # 1800: 20 % over
    # 2 % over the budget costs more than 5 points of the measure lost within it
    assert objective(930, 0.96) > objective(850, 0.90)
    # the evaluated model's own bits when given (the other layers' move a little)
    assert np.isclose(objective(800, 0.95, model_bits=1515), 0.8 + 1.0)
    assert objective.describe().endswith(
        "+ 1.0 * max(0, 100*(model_bits - 1500)/1500) over the sparsities and pruning "
        "structures of the auto layers (searched_bits: exact ROM bits of those layers; "
        "model_bits: of every layer)")
    assert "size" not in Objective(1000, 0.95).describe()        # no budget: the former text
    with pytest.raises(SizeBudgetError, match=r"^size_budget: 600 bits leaves nothing for "
                                              r"the searched layers \(the others take 600\)$"):
        Objective(1000, 0.95, size_budget=600, fixed_bits=600)


def test_size_budget_is_charged_on_the_evaluated_models_bits(trained):
    qnet, data, _ = trained
    qnet = copy.deepcopy(qnet)
    with train.deterministic(3):
        evaluator = Evaluator(qnet, data, ["dense2"], epochs=1, seed=3, codes=HARDWARE_CODES)
        base = evaluator.measure()
        fixed = base["bits"] - base["searched_bits"]
        assert fixed == exact_model_bits(qnet.int_layers())[1]["conv0"]   # as written
        budget = base["bits"] - 100
        evaluator.objective = Objective(base["searched_bits"], base["measure"],
                                        accuracy_budget=100.0, size_budget=budget,
                                        fixed_bits=fixed)
        evaluator("t", {"dense2": 0.0}, {"dense2": "unstructured"})   # as dense as the base
    record = evaluator.history[-1]
    over = 100 * (record.bits - budget) / budget
    assert over > 0
    assert np.isclose(record.objective, record.searched_bits / base["searched_bits"] + over,
                      atol=1e-6)


def test_settings_refuse_a_size_budget_below_one_bit():
    check_settings(Settings(size_budget=1))
    with pytest.raises(ValueError,
                       match=r"^size_budget: must be an integer in 1..1000000000, got 0$"):
        check_settings(Settings(size_budget=0))


@pytest.mark.parametrize("settings,message", [
    (dict(scalarization="max"), "scalarization: must be one of sum, chebyshev, got 'max'"),
    (dict(scalarization="chebyshev"), "accuracy_weight: the chebyshev scalarization needs one "
                                      "above 0 (the slope of its ray), got 0.0"),
    (dict(scalarization="chebyshev", accuracy_weight=0.1, utopia=-1.0),
     "utopia: must be in 0..100, got -1.0"),
])
def test_settings_refuse_a_bad_scalarization(settings, message):
    check_settings(Settings(scalarization="chebyshev", accuracy_weight=0.1))
    with pytest.raises(ValueError) as info:
        check_settings(Settings(**settings))
    assert str(info.value) == message
    with pytest.raises(ValueError):                 # the objective checks the same rule
        Objective(1000, 0.95, weight=settings.get("accuracy_weight", 0.0),
                  scalarization=settings["scalarization"], utopia=settings.get("utopia", 1.5))


@pytest.mark.parametrize("exponent", [0.25, 4.5])
def test_settings_refuse_a_size_exponent_out_of_range(exponent):
    check_settings(Settings(size_exponent=2.0))
    with pytest.raises(ValueError, match=r"size_exponent: must be in 0.5..4, got"):
        check_settings(Settings(size_exponent=exponent))


def test_gaussian_process_sees_the_objective_capped(trained, monkeypatch):
    """Points far beyond the budget reach the GP as GP_CAP; the records keep the truth."""
    import skopt
    qnet, data, _ = trained
    seen = []

    def fake_gp_minimize(func, dims, **kwargs):
        assert len(dims) == 3                # conv0's sparsity, dense2's and its structure
        for x in ([0.9, 0.95, "block16"], [0.0, 0.0, "block4"]):
            seen.append(func(x))
    monkeypatch.setattr(skopt, "gp_minimize", fake_gp_minimize)
    with train.deterministic(3):
        evaluator = Evaluator(qnet, data, AUTO, epochs=1, seed=3, codes=CODES)
        base = evaluator.measure()
        # a budget of -100 points: every point lies 100 points beyond it
        evaluator.objective = Objective(base["searched_bits"], base["measure"],
                                        accuracy_budget=-100)
        result = run_searches(evaluator, evaluations=2, seed=3, progress=False, methods=("bayes",))
    objectives = [r["objective"] for r in result["bayes"]]
    assert min(objectives) > 100 and seen == [2.0, 2.0]        # GP_CAP, as docs/quant.md says


def test_distillation_adds_the_softened_teachers_divergence(trained):
    _, data, net = trained
    loss = distillation_loss(net, data, weight=2.0, temperature=3.0)
    idx = torch.arange(8)
    with torch.no_grad():
        net.eval()
        teacher = net(train.as_float(data.train.x[:8])).float()
    labels = torch.from_numpy(data.train.y[:8])
    # the student equal to the teacher: no divergence, the cross-entropy alone
    assert torch.isclose(loss(teacher, idx), F.cross_entropy(teacher, labels))
    student = torch.zeros_like(teacher)       # uniform: KL(teacher || uniform) at T = 3
    soft = F.softmax(teacher / 3.0, dim=1)
    kl = (soft * (soft.log() + np.log(10))).sum(dim=1).mean()
    assert torch.isclose(loss(student, idx), F.cross_entropy(student, labels) + 2.0 * 9.0 * kl,
                         rtol=1e-5)
