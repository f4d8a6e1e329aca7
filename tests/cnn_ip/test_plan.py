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
     "p.yaml:3: dataset: must be one of digits, digits-detect, got 'mnist'"),
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
    (HEAD + GOOD_LAYERS + "quantize: {codes: fast}\n",
     "p.yaml:8: quantize.codes: must be one of hardware, all, got 'fast'"),
    (HEAD + GOOD_LAYERS + "quantize: {structures: blocks}\n",
     "p.yaml:8: quantize.structures: must be one of any, block, got 'blocks'"),
    (HEAD + GOOD_LAYERS + "quantize: {prune_steps: 0}\n",
     "p.yaml:8: quantize.prune_steps: must be an integer in 1..100, got 0"),
    (HEAD + GOOD_LAYERS + "quantize: {size_exponent: 0}\n",
     "p.yaml:8: quantize.size_exponent: must be >= 0.5, got 0"),
    (HEAD + GOOD_LAYERS + "quantize: {scalarization: max}\n",
     "p.yaml:8: quantize.scalarization: must be one of sum, chebyshev, got 'max'"),
    (HEAD + GOOD_LAYERS + "quantize: {utopia: 101}\n",
     "p.yaml:8: quantize.utopia: must be <= 100.0, got 101"),
    (HEAD + GOOD_LAYERS + "quantize: {size_budget: 0}\n",
     "p.yaml:8: quantize.size_budget: must be an integer in 1..1000000000, got 0"),
    (HEAD + GOOD_LAYERS + "quantize: {size_budget: 500, size_budget_mode: full}\n",
     "p.yaml:8: quantize.size_budget_mode: must be one of penalty, fill, got 'full'"),
    (HEAD + GOOD_LAYERS + "quantize: {size_budget: 55000.5}\n",
     "p.yaml:8: quantize.size_budget: must be an integer in 1..1000000000, got 55000.5"),
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


def test_top_name_is_ascii():
    """A Python identifier need not be a Verilog one: found here, not when the top is built."""
    with pytest.raises(PlanError, match=r"^p.yaml:1: name: names the Verilog top: letters"):
        parse_plan(HEAD.replace("name: t", "name: caf\u00e9") + GOOD_LAYERS, "p.yaml")


def test_layer_names_are_ascii():
    text = HEAD + GOOD_LAYERS.replace("{type: maxpool, k: 2}", "{type: maxpool, k: 2, name: \u00f1}")
    with pytest.raises(PlanError, match=r"^p.yaml:6: layers\[1\].name: names Verilog modules"):
        parse_plan(text, "p.yaml")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: t\n\xff\xfe\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert str(info.value) == f"{path}:2: yaml: not UTF-8 text (byte 0xff)"


def test_a_control_character_is_one_line(tmp_path, capsys):
    """Was a yaml ReaderError traceback: YAML checks every character before parsing."""
    from cnn_ip.cli import main
    path = tmp_path / "p.yaml"
    path.write_bytes(b"name: t\nlayers: \x00\n")
    assert main(["assemble", str(path), "-o", str(tmp_path / "out"), "--random-weights"]) == 2
    assert capsys.readouterr().err == (f"cnn-ip: {path}:2: yaml: character #x0000: special "
                                       "characters are not allowed\n")
    assert [p.name for p in tmp_path.iterdir()] == ["p.yaml"]


# ---------------------------------------------------------------- the planner's fields

FREE = """name: net
input: {channels: 3, height: 20, width: 12}
device: xc7vx485t
clock_mhz: 200
layers:
  - {type: conv, out: 8, k: 3, pad: 1, act: leaky, weights: int4, act_bits: 4, fold: {lanes: 4, simd: 3}}
  - {type: maxpool, k: 2, stride: 1, pad: 1}
  - {type: conv, out: 16, k: 3, stride: 2, weights: binary, act_bits: 3, dataflow: row}
  - {type: conv, out: 6, k: 1, weights: ternary}
"""


def test_free_input_shape_conv_head_and_planner_fields():
    plan = parse_plan(FREE + "target_fps: 50\nlimits: {bram: 0.5, dsp: 1}\n")
    assert plan.dataset is None and plan.classes is None and plan.input_shape == (3, 20, 12)
    assert plan.device == "xc7vx485t" and plan.clock_mhz == 200.0 and plan.target_fps == 50.0
    assert plan.limits == {"lut": 0.9, "ff": 0.9, "dsp": 1.0, "bram": 0.5}
    conv, pool, conv2, head = plan.layers
    assert conv.fold == (4, 3) and conv.act == "leaky" and conv.reduce == 27
    # Darknet's pool padding: pad 1 with k 2, stride 1 keeps the map's size
    assert (pool.pad, pool.out_shape) == (1, (8, 20, 12))
    assert (pool.pad_before, pool.pad_after, conv.pad_before, conv.pad_after) == (0, 1, 1, 1)
    assert conv2.out_shape == (16, 9, 5) and conv2.dataflow == "row" and conv2.fold is None
    assert head.final and head.act == "none" and head.out_shape == (6, 9, 5)
    assert head.act_bits is None and not conv.final


def test_dense_output_is_a_1x1_map_and_dense_window_is_the_map():
    plan = parse_plan(HEAD + GOOD_LAYERS)
    dense = plan.layers[-1]
    assert dense.out_shape == (10, 1, 1) and dense.window == 4 and dense.reduce == 4 * 4 * 4


def test_defaults_without_planner_fields():
    plan = parse_plan(HEAD + GOOD_LAYERS)
    assert plan.device is None and plan.target_fps is None and plan.detect is None
    assert plan.limits == {"lut": 0.9, "ff": 0.9, "dsp": 0.9, "bram": 0.9}
    assert all(layer.dataflow == "auto" for layer in plan.layers)
    with pytest.raises(PlanError, match=r"^<plan>:1: device: missing \(assemble needs it\)$"):
        plan.require("device", "assemble")


DETECT = """name: det
input: {channels: 1, height: 32, width: 32}
dataset: digits-detect
detect: {anchors: 3}
layers:
  - {type: conv, out: 8, k: 3, pad: 1, act: leaky, weights: int4, act_bits: 4}
  - {type: conv, out: 45, k: 1, weights: int8}
"""

def test_detection_plan():
    plan = parse_plan(DETECT.replace("  - {type: conv, out: 45", "  - {type: maxpool, k: 2}\n  - {type: conv, out: 45"))
    assert plan.detect == {"anchors": 3, "classes": 10} and plan.classes == 10
    assert plan.layers[-1].out_shape == (45, 16, 16)


PLANNER_CASES = [
    (FREE + "device: vc707\n", "p.yaml:10: device: given twice"),
    (FREE.replace("device: xc7vx485t", "device: vc707"),
     "p.yaml:3: device: must be one of xc7z020, xc7vx485t"),
    (FREE.replace("clock_mhz: 200", "clock_mhz: 0"), "p.yaml:4: clock_mhz: must be > 0, got 0"),
    (FREE.replace("clock_mhz: 200", "clock_mhz: 5000"), "p.yaml:4: clock_mhz: must be <= 1000"),
    (FREE + "target_fps: -3\n", "p.yaml:10: target_fps: must be > 0, got -3"),
    (FREE + "limits: {bram: 1.5}\n", "p.yaml:10: limits.bram: must be <= 1, got 1.5"),
    (FREE + "limits: {luts: 0.5}\n", "p.yaml:10: limits.luts: unknown key (allowed: lut, ff, dsp, bram)"),
    (FREE + "limits: 0.5\n", "p.yaml:10: limits: must be a mapping"),
    (FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 3, simd: 3}"),
     "p.yaml:6: layers[0].fold.lanes: must divide the layer's 8 output channels, got 3"),
    (FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 4, simd: 2}"),
     "p.yaml:6: layers[0].fold.simd: must divide the layer's 3 input channels, got 2"),
    (FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 4}"),
     "p.yaml:6: layers[0].fold.simd: missing"),
    (FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 128, simd: 3}"),
     "p.yaml:6: layers[0].fold.lanes: must be an integer in 1..64, got 128"),
    (FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 4, simd: 3, pe: 2}"),
     "p.yaml:6: layers[0].fold.pe: unknown key"),
    (FREE.replace("{type: maxpool, k: 2, stride: 1, pad: 1}", "{type: maxpool, k: 2, pad: 2}"),
     "p.yaml:7: layers[1].pad: must be smaller than k = 2, got 2"),
    (FREE.replace("name: net", "name: my-net"), "p.yaml:1: name: names the Verilog top"),
    (FREE.replace("{type: maxpool,", "{name: 2nd, type: maxpool,"), "p.yaml:7: layers[1].name: names Verilog"),
    (FREE.replace("dataflow: row", "dataflow: column"), "p.yaml:8: layers[2].dataflow: must be one of auto, row, frame"),
    (FREE.replace("{type: conv, out: 6, k: 1, weights: ternary}", "{type: maxpool, k: 1}"),
     "p.yaml:9: layers[3].type: the last layer must be a dense classifier or a conv head"),
    (DETECT.replace("out: 45", "out: 40"),
     "p.yaml:7: layers[1].out: the head needs anchors*(5+classes) = 3*(5+10) = 45 outputs, got 40"),
    (DETECT.replace("detect: {anchors: 3}\n", ""),
     "p.yaml:3: detect: missing: dataset digits-detect needs a detection head"),
    (DETECT.replace("anchors: 3", "anchors: 3, classes: 20"),
     "p.yaml:4: detect.classes: dataset digits-detect has 10 classes, got 20"),
    (DETECT.replace("dataset: digits-detect\n", ""), "p.yaml:3: detect.classes: missing"),
    (DETECT.replace("height: 32", "height: 16"), "p.yaml:2: input: dataset digits-detect needs canvases of at least 24x24"),
    (DETECT.replace("channels: 1", "channels: 3"), "p.yaml:2: input.channels: dataset digits-detect has 1-channel"),
    (DETECT.replace("{type: conv, out: 45, k: 1, weights: int8}", "{type: dense, out: 45, weights: int8}"),
     "p.yaml:7: layers[1].type: with detect, the last layer must be the conv head"),
]


@pytest.mark.parametrize("text,message", PLANNER_CASES, ids=range(len(PLANNER_CASES)))
def test_planner_field_mistakes(text, message):
    with pytest.raises(PlanError) as info:
        parse_plan(text, "p.yaml")
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_adjacent_fixed_folds_must_divide_one_another():
    text = FREE.replace("dataflow: row}", "dataflow: row, fold: {lanes: 2, simd: 8}}")
    parse_plan(text)                       # 4 lanes into simd 8: a width adapter joins them
    bad = FREE.replace("fold: {lanes: 4, simd: 3}", "fold: {lanes: 8, simd: 3}").replace(
        "dataflow: row}", "dataflow: row, fold: {lanes: 2, simd: 4}}").replace(
        "out: 8, k: 3, pad: 1", "out: 24, k: 3, pad: 1").replace("lanes: 8, simd: 3", "lanes: 3, simd: 3")
    with pytest.raises(PlanError, match=r"^p.yaml:8: layers\[2\].fold.simd: must divide or be a "
                       r"multiple of layers\[0\]'s 3 lanes"):
        parse_plan(bad, "p.yaml")


def test_shapes_the_blocks_cannot_build_name_the_limit():
    from cnn_ip.plan import check_buildable
    big_dense = HEAD + GOOD_LAYERS.replace("  - {type: maxpool, k: 2}\n", "")
    plan = parse_plan(big_dense, "p.yaml")      # quantize can still use it
    with pytest.raises(PlanError, match=r"^p.yaml:6: layers\[1\].type: a row-based dense layer's "
                       r"window is its whole input map, which must be square and at most 7x7 "
                       r"\(line_buffer's k\), got 8x8"):
        check_buildable(plan)
    wide_k = FREE.replace("out: 6, k: 1", "out: 6, k: 9, pad: 4")
    with pytest.raises(PlanError, match=r"^p.yaml:9: layers\[3\].k: the line buffer takes k up to 7 "
                       r"\(line_buffer's k\), got 9"):
        check_buildable(parse_plan(wide_k, "p.yaml"))
    check_buildable(parse_plan(FREE, "p.yaml"))
    big_pool = FREE.replace("{type: maxpool, k: 2, stride: 1, pad: 1}", "{type: maxpool, k: 9, stride: 1, pad: 8}")
    with pytest.raises(PlanError, match=r"^p.yaml:7: layers\[1\].k: the max-pool takes k up to 7 "
                       r"\(maxpool's k\), got 9"):
        check_buildable(parse_plan(big_pool, "p.yaml"))


def test_tiny_yolov2_example_shapes():
    plan = load_plan("examples/tiny_yolov2.yaml")
    assert plan.input_shape == (3, 416, 416) and plan.device == "xc7vx485t"
    assert plan.detect == {"anchors": 5, "classes": 20}
    convs = [x for x in plan.layers if x.type == "conv"]
    assert [x.out for x in convs] == [16, 32, 64, 128, 256, 512, 1024, 1024, 125]
    last_pool = [x for x in plan.layers if x.type == "maxpool"][-1]
    assert (last_pool.in_shape, last_pool.out_shape) == ((512, 13, 13), (512, 13, 13))
    assert plan.layers[-1].out_shape == (125, 13, 13) and plan.layers[-1].act == "none"
    # 432 + 4,608 + 18,432 + 73,728 + 294,912 + 1,179,648 + 4,718,592 + 9,437,184 + 128,000
    assert sum(x.out * x.reduce for x in convs) == 15_855_536


def _convs(plan):
    return [x for x in plan.layers if x.type == "conv"]


def test_tiny_yolov2_ecp5_example_deep_activations():
    plan = load_plan("examples/tiny_yolov2_ecp5.yaml")
    assert plan.device == "ecp5-85f" and plan.input_shape == (3, 416, 416)
    convs = _convs(plan)
    assert [x.out for x in convs] == [16, 32, 64, 128, 256, 512, 1024, 1024, 125]
    assert [x.act_bits for x in convs] == [8, 6, 6, 6, 3, 3, 3, 3, None]
    assert sum(x.out * x.reduce for x in convs) == 15_855_536


def test_yolov2_example_without_passthrough():
    plan = load_plan("examples/yolov2.yaml")
    assert plan.device == "xc7vx485t" and plan.layers[-1].out_shape == (125, 13, 13)
    convs = _convs(plan)
    assert len(convs) == 22 and sum(x.type == "maxpool" for x in plan.layers) == 5
    # Darknet yolov2-voc: 3x3 and 1x1 convs alternating; conv20 takes conv19's 1024
    # channels (no passthrough concatenation, which would make them 1280)
    assert [(x.out, x.k) for x in convs[:4]] == [(32, 3), (64, 3), (128, 3), (64, 1)]
    assert convs[-2].in_shape == (1024, 13, 13) and convs[-2].reduce == 9 * 1024
    weights = (27 * 32 + 9 * 32 * 64 + 9 * 64 * 128 + 128 * 64 + 9 * 64 * 128
               + 9 * 128 * 256 + 256 * 128 + 9 * 128 * 256
               + 9 * 256 * 512 + 2 * (512 * 256 + 9 * 256 * 512)
               + 9 * 512 * 1024 + 2 * (1024 * 512 + 9 * 512 * 1024)
               + 3 * 9 * 1024 * 1024 + 1024 * 125)
    assert sum(x.out * x.reduce for x in convs) == weights


FRAME_RULE = """name: rule
input: {channels: 1, height: 8, width: 8}
device: ecp5-85f
clock_mhz: 100
layers:
  - {type: conv, out: 16, k: 3, pad: 1, weights: ternary, act_bits: 4, dataflow: frame, fold: {lanes: 4, simd: 1}}
  - {type: maxpool, k: 2}
  - {type: conv, out: 8, k: 3, pad: 1, weights: ternary, act_bits: 4, dataflow: row}
  - {type: dense, out: 10, weights: int4}
"""


@pytest.mark.parametrize("text,message", [
    (FRAME_RULE, "p.yaml:8: layers[2].dataflow: must be frame: layers[0] is frame-based with "
                 "Cout/L = 4 groups, and its group-major output goes only into frame buffers "
                 "and pools (Contract 6)"),
    (FRAME_RULE.replace("k: 3, pad: 1, weights: ternary, act_bits: 4, dataflow: row",
                        "k: 9, pad: 4, weights: ternary, act_bits: 4, dataflow: frame"),
     "p.yaml:8: layers[2].k: the frame buffer takes k up to 7 (frame_buffer's k), got 9"),
    (FRAME_RULE.replace("dataflow: row", "dataflow: sideways"),
     "p.yaml:8: layers[2].dataflow: must be one of auto, row, frame, got 'sideways'"),
])
def test_frame_mistakes_exit_2_with_one_line(tmp_path, capsys, text, message):
    from cnn_ip.cli import main
    plan = tmp_path / "p.yaml"
    plan.write_text(text)
    out = tmp_path / "out"
    assert main(["assemble", str(plan), "-o", str(out), "--random-weights", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith(message.split("p.yaml", 1)[1]), err
    assert f"{plan}:" in err and not out.exists()


def test_quantize_settings_reach_the_pipeline():
    from quant.pipeline import Settings
    plan = parse_plan(HEAD + GOOD_LAYERS + "quantize: {codes: all, prune_steps: 2, seed: 3, "
                      "structures: block, accuracy_weight: 0.1, size_exponent: 2, "
                      "scalarization: chebyshev, utopia: 1, size_budget: 60000, "
                      "size_budget_mode: fill}\n", "p.yaml")
    assert plan.quantize == {"codes": "all", "prune_steps": 2, "seed": 3,
                             "structures": "block", "accuracy_weight": 0.1,
                             "size_exponent": 2.0, "scalarization": "chebyshev", "utopia": 1.0,
                             "size_budget": 60000, "size_budget_mode": "fill"}
    settings = Settings(**plan.quantize)
    assert (settings.codes, settings.prune_steps, settings.seed, settings.structures,
            settings.accuracy_weight, settings.size_exponent, settings.scalarization,
            settings.utopia, settings.size_budget, settings.size_budget_mode) == (
        "all", 2, 3, "block", 0.1, 2.0, "chebyshev", 1.0, 60000, "fill")
