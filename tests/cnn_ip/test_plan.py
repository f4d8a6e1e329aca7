"""Plan loading: the example loads; every mistake is one line ``file:line: field: what``."""
import pytest

from cnn_ip.plan import PlanError, load_plan, parse_plan

HEAD = """name: t
input: {channels: 1, height: 8, width: 8, bits: 8}
dataset: digits
layers:
"""
GOOD_LAYERS = """  - {type: conv, out: 4, k: 3, pad: 1, weights: int4, act_bits: 4}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: ternary, sparsity: auto}
"""


def test_example_plan_loads_with_shapes_and_defaults():
    plan = load_plan("examples/digits.yaml")
    assert plan.name == "digits" and plan.dataset == "digits" and plan.input_shape == (1, 8, 8)
    assert plan.layers[0].in_shape == (1, 8, 8)
    assert plan.layers[-1].type == "dense" and plan.layers[-1].act == "none"
    for before, after in zip(plan.layers, plan.layers[1:]):
        assert before.out_shape == after.in_shape


def test_good_plan_and_planner_fields_pass_through():
    plan = parse_plan("device: ecp5-85f\nclock_mhz: 100\ndataflow: auto\n" + HEAD + GOOD_LAYERS)
    assert plan.device == "ecp5-85f" and plan.clock_mhz == 100.0 and plan.dataflow == "auto"
    conv, pool, dense = plan.layers
    assert (conv.stride, conv.act, conv.wbits, conv.out_shape) == (1, "relu", 4, (4, 8, 8))
    assert (pool.stride, pool.out_shape) == (2, (4, 4, 4))
    assert dense.sparsity == "auto" and dense.code_bits == 2 and dense.wbits is None and dense.name == "dense2"


def test_loading_executes_nothing():
    text = HEAD.replace("name: t", "name: !!python/object/apply:os.system ['echo hacked']") + GOOD_LAYERS
    with pytest.raises(PlanError, match=r"^p.yaml:1: yaml: "):
        parse_plan(text, "p.yaml")


# (text, expected message). Line numbers count from 1 in the text given.
CASES = [
    (HEAD + GOOD_LAYERS + "colour: red\n", "p.yaml:8: colour: unknown key"),
    (HEAD.replace("dataset: digits", "dataset: mnist") + GOOD_LAYERS,
     "p.yaml:3: dataset: must be one of digits, got 'mnist'"),
    (HEAD.replace("name: t\n", "") + GOOD_LAYERS, "p.yaml:1: name: missing"),
    (HEAD.replace("bits: 8", "bits: 4") + GOOD_LAYERS,
     "p.yaml:2: input.bits: the network input is 8-bit unsigned"),
    (HEAD.replace("height: 8", "height: 7") + GOOD_LAYERS,
     "p.yaml:2: input: dataset digits has 1x8x8"),
    (HEAD + GOOD_LAYERS.replace("type: conv", "type: deconv"),
     "p.yaml:5: layers[0].type: must be one of conv, maxpool, dense, got 'deconv'"),
    (HEAD + GOOD_LAYERS.replace("weights: int4", "weights: int9"),
     "p.yaml:5: layers[0].weights: must be one of binary, ternary, int2"),
    (HEAD + GOOD_LAYERS.replace("act_bits: 4", "act_bits: 9"),
     "p.yaml:5: layers[0].act_bits: must be an integer in 1..8, got 9"),
    (HEAD + GOOD_LAYERS.replace("act_bits: 4", "act_bits: 0"),
     "p.yaml:5: layers[0].act_bits: must be an integer in 1..8, got 0"),
    (HEAD + GOOD_LAYERS.replace(", act_bits: 4", ""), "p.yaml:5: layers[0].act_bits: missing"),
    (HEAD + GOOD_LAYERS.replace("k: 3", "k: 3, colour: red"),
     "p.yaml:5: layers[0].colour: unknown key"),
    (HEAD + GOOD_LAYERS.replace("sparsity: auto", "sparsity: 1.5"),
     "p.yaml:7: layers[2].sparsity: must be a fraction in [0, 1) or auto, got 1.5"),
    (HEAD + GOOD_LAYERS.replace("weights: ternary, sparsity: auto", "weights: binary, sparsity: 0.5"),
     "p.yaml:7: layers[2].sparsity: binary weights have no zero code"),
    (HEAD + GOOD_LAYERS.replace("out: 10", "out: 12"),
     "p.yaml:7: layers[2].out: the dataset has 10 classes, the last layer has 12 outputs"),
    (HEAD + GOOD_LAYERS.replace("{type: maxpool, k: 2}", "{type: maxpool, k: 9}"),
     "p.yaml:6: layers[1].k: window 9x9 does not fit the 8x8 input"),
    (HEAD + GOOD_LAYERS.replace("k: 3, pad: 1", "k: 3, pad: 3"),
     "p.yaml:5: layers[0].pad: must be smaller than k = 3, got 3"),
    (HEAD + GOOD_LAYERS.replace("{type: maxpool, k: 2}", "{type: dense, out: 8, weights: int4, act_bits: 4}\n"
                                "  - {type: conv, out: 8, k: 1, weights: int4, act_bits: 4}"),
     "p.yaml:7: layers[2].type: conv cannot follow a dense layer"),
    (HEAD + "  - {type: conv, out: 10, k: 3, weights: int4, act_bits: 4}\n",
     "p.yaml:5: layers[0].type: the last layer must be the dense classifier"),
    (HEAD + GOOD_LAYERS.replace("sparsity: auto", "sparsity: auto, act: relu"),
     "p.yaml:7: layers[2].act: the last layer outputs its accumulator; its act must be none"),
    (HEAD + GOOD_LAYERS.replace("sparsity: auto", "sparsity: auto, act_bits: 4"),
     "p.yaml:7: layers[2].act_bits: the last layer outputs its accumulator and takes no act_bits"),
    (HEAD + GOOD_LAYERS.replace("act_bits: 4}", "act_bits: 4, slope: 0.1}"),
     "p.yaml:5: layers[0].slope: only a leaky activation has a slope"),
    (HEAD + GOOD_LAYERS.replace("act_bits: 4}", "act_bits: 4, bn: yes please}"),
     "p.yaml:5: layers[0].bn: must be true or false"),
    (HEAD + GOOD_LAYERS.replace("{type: maxpool, k: 2}", "{type: maxpool, k: 2, name: x}")
     .replace("sparsity: auto", "sparsity: auto, name: x"),
     "p.yaml:7: layers[2].name: 'x' is used by an earlier layer"),
    (HEAD + "  []\n", "p.yaml:4: layers: must be a non-empty list"),
    (HEAD + GOOD_LAYERS + "name: again\n", "p.yaml:8: name: given twice"),
    (HEAD + GOOD_LAYERS + "clock_mhz: fast\n", "p.yaml:8: clock_mhz: must be a number, got 'fast'"),
    (HEAD + GOOD_LAYERS + "dataflow: sideways\n", "p.yaml:8: dataflow: must be one of auto, row, frame"),
    (HEAD + GOOD_LAYERS + "quantize: {evaluations: -1}\n",
     "p.yaml:8: quantize.evaluations: must be an integer in 0..1000000000, got -1"),
    (HEAD + GOOD_LAYERS + "quantize: {epochz: 3}\n", "p.yaml:8: quantize.epochz: unknown key"),
    (HEAD + GOOD_LAYERS + "  - [oops\n", "p.yaml:9: yaml: "),
    ("- just a list\n", "p.yaml:1: plan: must be a mapping"),
]


@pytest.mark.parametrize("text,message", CASES, ids=range(len(CASES)))
def test_each_mistake_is_one_line_with_file_line_and_field(text, message):
    with pytest.raises(PlanError) as info:
        parse_plan(text, "p.yaml")
    text_of_error = str(info.value)
    assert text_of_error.startswith(message), text_of_error
    assert "\n" not in text_of_error


def test_missing_file(tmp_path):
    with pytest.raises(PlanError, match=r"nope.yaml: cannot read"):
        load_plan(tmp_path / "nope.yaml")
