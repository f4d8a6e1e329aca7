"""The planner: Contract 7's cost model against hand computations, fit errors, determinism."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from cnn_ip.assemble_cmd import random_model
from cnn_ip.plan import PlanError, parse_plan
from cnn_ip.planner import conv_terms, plan_network, weight_image
from quant import reference, sparse_format

SMALL = """name: small
input: {channels: 2, height: 8, width: 8}
device: ecp5-85f
clock_mhz: 100
layers:
  - {type: conv, out: 4, k: 3, pad: 1, act: relu, weights: binary, act_bits: 4, fold: {lanes: 2, simd: 1}}
  - {type: maxpool, k: 2}
  - {type: conv, out: 6, k: 3, stride: 2, act: leaky, weights: ternary, act_bits: 3, sparsity: 0.5}
  - {type: dense, out: 5, weights: int4}
"""


def planned(text=SMALL, seed=0, compare=False):
    plan = parse_plan(text, "p.yaml")
    return plan, plan_network(plan, random_model(plan, seed), compare=compare)


def test_cycles_per_frame_by_hand():
    plan, result = planned()
    conv0, pool, conv2, dense = result.stages
    # conv0: fixed L=2, S=1 on 8x8x2 -> 8x8x4, K=3: input 8*8*2/1, compute 64*(4/2)*(9*2/1)
    assert conv0.terms == {"input": 128, "compute": 2304, "output": 128, "pause": 0}
    assert conv0.cycles == 2304 and (conv0.lanes, conv0.simd) == (2, 1)
    # the pool takes conv0's 2 lanes: 8*8*4/2 beats in, 4*4*4/2 out
    assert (pool.lanes, pool.terms["input"], pool.terms["output"]) == (2, 128, 32)
    # the pipeline runs at its slowest stage; the others were folded no faster than needed
    assert result.cycles == max(s.cycles for s in result.stages) == 2304
    assert all(s.cycles <= 2304 for s in result.stages)
    assert result.fps == pytest.approx(100e6 / 2304)
    # conv2 (stride 2, no pad): 4x4x4 -> 1x1x6; dense: 1x1x6 -> 5
    L, S = conv2.lanes, conv2.simd
    assert conv2.terms["compute"] == 1 * 1 * (6 // L) * (9 * 4 // S)
    assert conv2.terms["input"] == 16 * 4 // S
    # MACs: 64*4*18 + 1*6*36 + 5*6, two operations each
    assert result.macs_per_frame == 64 * 4 * 18 + 6 * 36 + 5 * 6


def test_dense_terms_use_the_whole_map_as_window():
    plan = parse_plan(SMALL)
    dense = plan.layers[-1]
    assert conv_terms(dense, 5, 3) == {"input": 2, "compute": 1 * 1 * 1 * 2, "output": 1, "pause": 0}


def test_neighbouring_folds_divide_one_another():
    _, result = planned()
    weight = [s for s in result.stages if s.layer.has_weights]
    for before, after in zip(weight, weight[1:]):
        assert before.lanes % after.simd == 0 or after.simd % before.lanes == 0
    for stage in weight:
        assert stage.layer.out % stage.lanes == 0 and stage.layer.in_shape[0] % stage.simd == 0


@pytest.mark.parametrize("weights,sparsity,lanes,simd", [
    ("binary", 0.0, 2, 3), ("ternary", 0.6, 4, 1), ("int4", 0.3, 1, 9), ("int8", 0.0, 4, 9),
    ("ternary", 0.95, 4, 9), ("int4", 0.9, 8, 9)])
def test_weight_image_geometry_equals_the_writer(weights, sparsity, lanes, simd):
    rng = np.random.default_rng(1)
    W = rng.integers(-7, 8, size=(8, 27)) if weights.startswith("int") else rng.choice([-1, 1], (8, 27))
    W[rng.random(W.shape) < sparsity] = 0
    if weights == "binary":
        W[W == 0] = 1
    if weights == "ternary":
        W = np.sign(W)
    from quant import weight_modes
    mode, wbits = weight_modes.parse(weights)
    image = sparse_format.encode(W, weights=mode, wbits=wbits, lanes=lanes, simd=simd)
    light = weight_image(W, weights=mode, wbits=wbits, lanes=lanes, simd=simd)
    assert (light.bits, light.word_bits, light.depth) == (image.bits, image.word_bits, image.depth)
    assert light.meta == {k: image.meta[k] for k in light.meta}
    assert (image.meta["coding"] == "block") == (sparsity >= 0.9)    # /2 where it pays


def test_binary_weight_bits_by_hand():
    # binary is dense at one bit a weight: 4 x 9 weights at L=2, S=1 are 18 words of 2 bits
    W = np.where(np.arange(36).reshape(4, 9) % 3, 1, -1)
    image = weight_image(W, weights="binary", wbits=None, lanes=2, simd=1)
    assert (image.word_bits, image.depth, image.bits) == (2, 18, 36)


def test_model_bits_are_the_rom_bits_at_the_chosen_fold():
    _, result = planned()
    for stage in result.stages:
        if not stage.layer.has_weights:
            assert stage.model_bits == 0
            continue
        il = stage.int_layer
        from quant import weight_modes
        mode, wbits = weight_modes.parse(il.weights)
        weights_bits = sparse_format.encode(il.W, weights=mode, wbits=wbits, lanes=stage.lanes,
                                            simd=stage.simd).meta["bits"]
        assert weights_bits < stage.model_bits < weights_bits + il.W.shape[0] * 64


def test_stage_estimate_from_geometry_equals_the_encoded_one():
    from assemblies import conv_row
    from cnn_ip.planner import stage_arguments
    plan = parse_plan(SMALL)
    layers = random_model(plan)
    il = layers[2]
    values = dict(layer=il, lanes=3, simd=2, abits=4, asigned=False, target="ecp5-85f")
    _, args = conv_row.BLOCK.prepared(**values)
    mode, wbits = plan.layers[2].mode
    light = stage_arguments(conv_row, values,
                            weight_image(il.W, weights=mode, wbits=wbits, lanes=3, simd=2))
    assert conv_row.BLOCK.estimate(**light) == conv_row.BLOCK.estimate(**args)


def test_totals_are_the_sum_of_stages_and_links():
    _, result = planned()
    for key in ("lut", "ff", "dsp", "bram", "bram_bits"):
        assert result.totals[key] == (sum(s.cost[key] for s in result.stages)
                                      + sum(link["cost"][key] for link in result.links))
    for stage in result.stages:
        from cnn_ip.planner import min_fifo
        assert stage.fifo_depth >= min_fifo() and stage.fifo_depth & (stage.fifo_depth - 1) == 0


def test_deterministic():
    from cnn_ip import report
    one = report.build(planned()[1], source="random-weights", seed=0)
    two = report.build(planned()[1], source="random-weights", seed=0)
    assert one == two


def test_deterministic_with_frame_stages_and_comparison():
    from cnn_ip import report
    one, two = (report.build(planned(BIG, compare=True)[1], source="random-weights", seed=0)
                for _ in range(2))
    assert one == two and one["offchip_bytes_per_frame"] > 0


def test_target_fps_met_with_the_cheapest_folds():
    text = SMALL.replace("clock_mhz: 100", "clock_mhz: 100\ntarget_fps: 10000")
    _, slow = planned(text)
    assert slow.target_met and slow.cycles <= 100e6 / 10000
    _, fast = planned()
    assert slow.totals["lut"] <= fast.totals["lut"]
    assert "target" in slow.rate_limit


def test_unreachable_target_takes_the_highest_rate_and_says_so():
    text = SMALL.replace("clock_mhz: 100", "clock_mhz: 100\ntarget_fps: 1e9")
    _, result = planned(text)
    assert result.target_met is False and result.cycles == planned()[1].cycles
    assert any("not reached" in note for note in result.notes)


def test_rate_limit_names_the_floor():
    _, result = planned()
    # conv0's fold is fixed at L=2, S=1: its 2304 cycles are the floor
    assert result.rate_limit.startswith("the floor: conv0")


def test_plan_that_cannot_fit_is_one_line_naming_resource_need_and_budget():
    text = SMALL.replace("clock_mhz: 100", "clock_mhz: 100\nlimits: {lut: 0.001}")
    with pytest.raises(PlanError) as info:
        planned(text)
    message = str(info.value)
    assert message.startswith("p.yaml:3: device: does not fit ecp5-85f: LUT needs ")
    assert message.endswith("the budget is 83 (0% of 83640)") or "the budget is 83 " in message
    assert "\n" not in message


def test_bram_fit_error_in_device_units():
    # row-based: the weights on chip (frame-based, these tiny maps fit in LUT RAM)
    text = SMALL.replace("clock_mhz: 100", "clock_mhz: 100\nlimits: {bram: 0.005}\ndataflow: row")
    with pytest.raises(PlanError, match=r"^p.yaml:3: device: does not fit ecp5-85f: block RAM "
                       r"needs \d+ DP16KD at the cheapest folding, the budget is 1 "):
        planned(text)


def test_planner_needs_device_and_clock():
    text = SMALL.replace("device: ecp5-85f\n", "")
    with pytest.raises(PlanError, match=r"^p.yaml:1: device: missing \(the planner needs it\)"):
        planned(text)
    text = SMALL.replace("clock_mhz: 100\n", "")
    with pytest.raises(PlanError, match=r"^p.yaml:1: clock_mhz: missing"):
        planned(text)


def test_random_model_stays_inside_the_activation_ranges():
    plan = parse_plan(SMALL)
    layers = random_model(plan, seed=3)
    assert [x.name for x in layers] == [x.name for x in plan.layers]
    conv2 = layers[2]
    assert 0.4 < np.mean(conv2.W == 0) < 0.6          # its sparsity 0.5
    assert set(np.unique(layers[0].W)) <= {-1, 1}
    assert np.all(np.abs(layers[3].W) <= 8) and np.all(layers[3].W != 0)
    x = np.random.default_rng(0).integers(0, 256, size=(64, 8, 8, 2), dtype=np.uint8)
    h = x.astype(np.int64)
    lo = 0
    for layer in layers[:-1]:
        h = reference.run_layer(layer, h, lo=lo) if layer.type == "maxpool" else reference.run_layer(layer, h)
        if layer.type != "maxpool":
            lo = layer.lo
            clamped = np.mean((h == layer.lo) | (h == layer.hi))
            spread = len(np.unique(h))
            assert spread > (layer.hi - layer.lo) / 4, (layer.name, spread)
            assert clamped < 0.6, (layer.name, clamped)
    assert random_model(plan, seed=3)[2].W.tobytes() == conv2.W.tobytes()


def test_fps_and_gops_of_the_report():
    from cnn_ip import report
    _, result = planned()
    data = report.build(result, source="random-weights", seed=0)
    assert data["fps"] == pytest.approx(100e6 / data["cycles_per_frame"], rel=1e-6)
    assert data["gops"] == pytest.approx(2 * result.macs_per_frame * data["fps"] / 1e9, rel=1e-3)
    fp32 = 32 * (4 * 18 + 4 + 6 * 36 + 6 + 5 * 6 + 5)
    assert data["model_bits"]["fp32"] == fp32
    assert data["model_bits"]["compression"] == round(fp32 / result.model_bits, 3)
    assert math.isclose(data["use"]["lut"], data["totals"]["lut"] / 83640, abs_tol=1e-4)


def test_a_layer_a_block_refuses_is_one_line_naming_the_limit():
    plan = parse_plan(SMALL, "p.yaml")
    layers = random_model(plan)
    layers[2].M = layers[2].M * 0 + (1 << 20)          # beyond the requantizer's multiplier
    with pytest.raises(PlanError) as info:
        plan_network(plan, layers)
    message = str(info.value)
    assert message.startswith("p.yaml:8: layers[2]: cannot be built at L=") and "M needs" in message
    assert "\n" not in message


def test_tiny_yolov2_is_capped_by_its_first_layer():
    from cnn_ip.plan import load_plan
    plan = load_plan("examples/tiny_yolov2.yaml")
    result = plan_network(plan, random_model(plan), compare=False)
    first = result.stages[0]
    # 416x416 outputs, a 3x3 window, S = Cin = 3 and L = Cout = 16: Ho*Wo*K*K cycles
    assert (first.lanes, first.simd) == (16, 3) and first.cycles == 416 * 416 * 9
    assert result.cycles == 1_557_504 and result.bottleneck == 0
    assert result.rate_limit.startswith("the floor: conv0")
    assert all(s.cycles <= result.cycles for s in result.stages)
    for resource in ("lut", "ff", "dsp", "bram"):
        assert result.totals[resource] <= result.budget[resource]


# --------------------------------------------------------------------------- frame data flow

BIG = """name: big
input: {channels: 1, height: 8, width: 8}
device: ecp5-85f
clock_mhz: 100
limits: {bram: 0.05}
layers:
  - {type: conv, out: 16, k: 3, pad: 1, act: relu, weights: ternary, act_bits: 4}
  - {type: maxpool, k: 2}
  - {type: conv, out: 128, k: 3, pad: 1, act: relu, weights: int8, act_bits: 4}
  - {type: conv, out: 32, k: 3, pad: 1, act: relu, weights: int4, act_bits: 4}
  - {type: dense, out: 10, weights: int4}
"""


def _bytes_by_offchip(stage):
    from quant import offchip
    weights, wbits = stage.layer.mode
    return offchip.offchip_bytes(stage.int_layer.W, weights=weights, wbits=wbits,
                                 lanes=stage.lanes, simd=stage.simd, bus_bytes=8)


def test_frame_when_the_weights_exceed_block_ram():
    # conv2's int8 weights (128 x 144) need 15 DP16KD on chip; the budget is 10 (5 % of 208)
    plan, result = planned(BIG, compare=True)
    flows = {s.name: s.dataflow for s in result.stages if s.layer.has_weights}
    assert flows["conv0"] == "row" and flows["conv2"] == "frame"
    assert result.totals["bram"] <= result.budget["bram"] == 10
    assert result.comparison["row"]["fits"] is False
    assert result.comparison["row"]["why"].startswith("device: does not fit ecp5-85f: block RAM")
    frame = result.comparison["frame"]
    assert frame["fits"] and set(frame["flows"]) == {"frame"}
    # the mix reads fewer bytes than all-frame (conv0 keeps its weights on chip)
    assert result.offchip_bytes < frame["offchip_bytes"]
    conv2 = next(s for s in result.stages if s.name == "conv2")
    assert "the network would need block RAM" in conv2.why
    from cnn_ip import report
    data = report.build(result, source="random-weights", seed=0)
    assert list(data["flows"]) == ["planned", "all-row", "all-frame"]
    assert data["flows"]["planned"]["offchip_bytes"] == result.offchip_bytes
    text = report.table(data)
    assert "frame/2" in text or "frame/1" in text
    assert "  all-row    does not fit: device: does not fit ecp5-85f: block RAM" in text
    assert f"off-chip {result.offchip_bytes:,} B a frame" in text


def test_offchip_bytes_are_whole_bus_beats_of_the_group_images_exactly():
    from quant import offchip
    _, result = planned(BIG)
    frames = [s for s in result.stages if s.dataflow == "frame"]
    assert frames
    for stage in frames:
        assert stage.offchip_bytes == _bytes_by_offchip(stage)
        weights, wbits = stage.layer.mode
        _, memory = offchip.layout([(stage.int_layer, stage.lanes, stage.simd)], bus_bytes=8)
        groups = memory["layers"][stage.name]["groups"]
        assert stage.offchip_bytes == sum(n for _, n in groups)
        assert all(n % 8 == 0 for _, n in groups) and len(groups) == stage.layer.out // stage.lanes
    assert result.offchip_bytes == sum(s.offchip_bytes for s in frames)
    from cnn_ip import report
    data = report.build(result, source="random-weights", seed=0)
    assert data["offchip_bytes_per_frame"] == result.offchip_bytes


def test_group_geometry_equals_the_offchip_writer():
    from cnn_ip.planner import group_geometry
    from quant import offchip
    rng = np.random.default_rng(5)
    W = rng.integers(-1, 2, size=(12, 27))
    W[rng.random(W.shape) < 0.4] = 0
    for lanes, simd in ((3, 1), (4, 3), (12, 9), (1, 27)):
        light = group_geometry(W, weights="ternary", wbits=None, lanes=lanes, simd=simd)
        images = offchip.group_images(W, weights="ternary", lanes=lanes, simd=simd)
        assert light.depths == tuple(image.meta["depth"] for image in images)
        assert light.word_bits == images[0].word_bits
        assert list(light.bytes) == offchip.group_bytes(W, weights="ternary", lanes=lanes,
                                                        simd=simd, bus_bytes=8)


def test_after_a_grouped_frame_conv_every_conv_is_frame():
    # Contract 6: conv2 (128 outputs, at most 64 lanes) is frame-based with several groups
    _, result = planned(BIG)
    weight = [s for s in result.stages if s.layer.has_weights]
    grouped = False
    for stage in weight:
        if grouped:
            assert stage.dataflow == "frame", stage.name
        grouped = grouped or stage.groups_out > 1
    assert grouped
    # a frame stage takes the stream before it as it comes: lanes and sub-maps
    for before, stage in zip(weight, weight[1:]):
        if stage.dataflow == "frame":
            assert stage.lanes_in == before.lanes and stage.groups_in == before.groups_out


def test_a_row_conv_after_a_grouped_frame_conv_is_refused():
    text = BIG.replace("weights: int8, act_bits: 4}", "weights: int8, act_bits: 4, dataflow: frame}")
    text = text.replace("weights: int4, act_bits: 4}", "weights: int4, act_bits: 4, dataflow: row}")
    with pytest.raises(PlanError) as info:
        planned(text)
    assert str(info.value) == (
        "p.yaml:10: layers[3].dataflow: must be frame: layers[2] is frame-based with Cout/L = "
        "2 groups, and its group-major output goes only into frame buffers and pools (Contract 6)")


def test_frame_limits_are_one_line_naming_the_block():
    text = SMALL.replace("k: 3, stride: 2,", "k: 9, pad: 4, stride: 2,").replace(
        "sparsity: 0.5}", "sparsity: 0.5, dataflow: frame}")
    text = text.replace("height: 8, width: 8", "height: 16, width: 16")
    with pytest.raises(PlanError, match=r"^p.yaml:8: layers\[2\].k: the frame buffer takes k "
                       r"up to 7 \(frame_buffer's k\), got 9$"):
        planned(text)


def test_one_map_or_two_by_the_stream_around_the_stage():
    from cnn_ip.planner import one_map_fits
    stage = SimpleNamespace(terms={"input": 100}, cycles=400)       # F = 100, C = 300
    assert one_map_fits(stage, 0, 0, 400)             # fill then compute: 100 + 300
    assert not one_map_fits(stage, 0, 0, 399)
    assert not one_map_fits(stage, 150, 0, 400)       # the stream takes 150 to fill it
    assert one_map_fits(stage, 150, 0, 450)
    assert not one_map_fits(stage, 0, 301, 400)       # the stage after takes 301 to drain it
    assert one_map_fits(stage, 100, 300, 400)


def test_planned_buffers_follow_the_rule():
    from cnn_ip.planner import occupancy, pace
    small = SMALL.replace("sparsity: 0.5}", "sparsity: 0.5, dataflow: frame}")
    held = {}
    for text in (BIG, small, small.replace("clock_mhz: 100", "clock_mhz: 100\ntarget_fps: 1000")):
        _, result = planned(text)
        stages = result.stages
        for k, stage in enumerate(stages):
            if stage.dataflow != "frame":
                assert stage.buffers == 0
                continue
            before = pace(result.plan.input_shape[1] * result.plan.input_shape[2], stages[:k])
            after = 0
            for later in stages[k + 1:]:
                after = max(after, later.terms["input"] if later.dataflow == "frame" else later.cycles)
                if later.dataflow == "frame":
                    break
            assert stage.buffers in (1, 2)
            held[stage.buffers] = True
            if stage.buffers == 1:
                # busy filling at the stream's pace, then reading at the pace after it:
                # its cycles a frame in the pipeline, within the pipeline's period
                assert stage.cycles == occupancy(stage, before, after) <= result.cycles
                assert stage.terms["wait"] == stage.cycles - max(
                    stage.terms["input"], stage.terms["compute"], stage.terms["output"]) \
                    - stage.terms["pause"]
    assert held == {1: True, 2: True}


def test_one_map_when_the_period_leaves_time_to_fill_then_read():
    # conv0 delivers conv2's 4x4x4 map over its 2,304 cycles: at the highest rate (2,304
    # cycles a frame) conv2 must fill one map while it reads the other; at 1,000 frames/s
    # (100,000 cycles) it fills, then reads one map
    text = SMALL.replace("sparsity: 0.5}", "sparsity: 0.5, dataflow: frame}")
    _, fast = planned(text)
    _, slow = planned(text.replace("clock_mhz: 100", "clock_mhz: 100\ntarget_fps: 1000"))
    assert fast.cycles == 2304 and slow.target_met
    two, one = fast.stages[2], slow.stages[2]
    assert (two.dataflow, two.buffers, one.dataflow, one.buffers) == ("frame", 2, "frame", 1)
    assert one.cost["bram_bits"] < two.cost["bram_bits"]
    assert "; 1 map held" in one.why and "; 2 maps held" in two.why


@pytest.mark.parametrize("lanes_in,groups_in,buffers", [(16, 1, 1), (4, 1, 2), (1, 16, 1), (2, 8, 2)])
def test_frame_stage_cost_is_conv_frames_own_estimate(lanes_in, groups_in, buffers):
    # the planner costs a fold once and swaps in the frame buffer's estimate for each input
    # stream: the result must be conv_frame's estimate and rate for that stream exactly
    from assemblies import conv_frame
    from cnn_ip.planner import Planner, resolve_device, _terms
    plan = parse_plan(BIG, "p.yaml")
    layers = random_model(plan)
    planner = Planner(plan, layers, resolve_device(plan))
    planner.coster.stage(2, 8, 16)            # a row stage of the same layer first: no sharing
    stage = planner.coster.frame(2, 8, 16, buffers, lanes_in, groups_in)
    _, args = conv_frame.BLOCK.prepared(
        layer=layers[2], lanes=8, simd=16, abits=4, asigned=False, target="ecp5-85f",
        lanes_in=lanes_in, order_in="group-major" if groups_in > 1 else "raster",
        groups_in=groups_in, buffers=buffers, bus_bits=64)
    est = conv_frame.BLOCK.estimate(**args)
    for key in ("lut", "ff", "dsp", "bram_bits"):
        assert stage.cost[key] == est[key], key
    from blocks.ram import block_units
    assert stage.cost["bram"] == block_units(est["bram"])["ecp5"]
    assert stage.cycles == est["cycles"] and stage.offchip_bytes == est["offchip_bytes"]
    assert stage.terms == _terms(conv_frame.cycles_per_frame(args))
