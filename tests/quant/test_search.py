"""Sparsity search: reproducible with a seed; every record's numbers are what they claim."""
import numpy as np

from cnn_ip.plan import parse_plan
from quant import train
from quant.data import Dataset, Split, load_dataset
from quant.export import exact_model_bits
from quant.search import Evaluator, Objective, run_searches

PLAN = """
name: t
input: {channels: 1, height: 8, width: 8}
dataset: digits
layers:
  - {type: conv, out: 4, k: 3, pad: 1, weights: ternary, act_bits: 4, sparsity: auto}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: int4, sparsity: auto}
"""


def small_data():
    full = load_dataset()
    cut = lambda split, n: Split(split.x[:n], split.y[:n])  # noqa: E731
    return Dataset("digits", cut(full.train, 160), cut(full.val, 80), cut(full.test, 80), 10)


def search_once(seed):
    specs, data = parse_plan(PLAN).layers, small_data()
    with train.deterministic(seed):
        net = train.train_fp32(specs, data, epochs=2, seed=seed, progress=False)
        qnet = train.quantize_net(specs, net, train.activation_scales(net, data.train.x), mbits=8)
        evaluator = Evaluator(qnet, data, ["conv0", "dense2"], epochs=1, seed=seed)
        _, ref_searched, ref_accuracy, _ = evaluator.measure()
        evaluator.objective = Objective(ref_searched, ref_accuracy, budget=0.5, penalty=1.0)
        result = run_searches(evaluator, evaluations=3, seed=seed, progress=False)
        # the last evaluation's model is still in qnet: its bits are recomputable
        last = evaluator.history[-1]
        assert exact_model_bits(qnet.int_layers())[0] == last.bits
    return result, evaluator


def test_search_is_reproducible_and_records_are_consistent():
    first, evaluator = search_once(seed=3)
    second, _ = search_once(seed=3)
    assert first == second
    sizes = {layer.spec.name: layer.weight.numel() for layer in evaluator.qnet.weight_layers()}
    assert len(first["bayes"]) == 3 and len(first["uniform"]) == 3
    for record in first["uniform"]:
        assert len(set(record["sparsity"].values())) == 1
    for record in first["bayes"] + first["uniform"]:
        assert np.isclose(record["objective"], atol=1e-6,
                          b=evaluator.objective(record["searched_bits"], record["val_accuracy"]))
        assert record["searched_bits"] <= record["bits"]
        for name, target in record["sparsity"].items():         # pruned as asked
            assert record["achieved"][name] >= round(target * sizes[name]) / sizes[name] - 1e-6
    assert first["best"] in first["bayes"]
    assert first["best"]["objective"] == min(r["objective"] for r in first["bayes"])


def test_objective_penalises_only_beyond_budget():
    objective = Objective(ref_bits=1000, ref_accuracy=0.95, budget=1.0, penalty=2.0)
    assert objective(500, 0.95) == 0.5
    assert np.isclose(objective(500, 0.945), 0.5)               # 0.5 points: within budget
    assert np.isclose(objective(500, 0.93), 0.5 + 2.0 * 1.0)    # 2 points: 1 beyond
