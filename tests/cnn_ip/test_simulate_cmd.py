"""``cnn-ip simulate``: stream packing and unpacking by hand, user errors, and the digits
network assembled by the CLI and simulated on all 360 test images, bit-exact."""
import json
import re

import numpy as np
import pytest

from cnn_ip.cli import main
from cnn_ip.simulate_cmd import compare, decode_frame, image_beats, steady_period

SEARCH = 2      # evaluations per search in the suite's digits plan


def digits_plan(directory):
    """examples/digits.yaml with a search of ``SEARCH`` evaluations a method: the same
    network, precisions and flow, quantized in a fraction of the example's time (its own
    search is measured in docs/quant.md).  Both whole-network tests use this text, so the
    second finds the first's quantize in the cache."""
    from pathlib import Path
    text, count = re.subn(r"evaluations: *\d+", f"evaluations: {SEARCH}",
                          Path("examples/digits.yaml").read_text())
    assert count == 1, "examples/digits.yaml: no quantize.evaluations to shorten"
    plan = directory / "digits.yaml"
    plan.write_text(text)
    return plan


def test_image_beats_pack_channels_little_endian():
    x = np.array([[[[1, 2, 3], [250, 0, 7]]]], dtype=np.uint8)       # N=1, H=1, W=2, C=3
    assert image_beats(x) == [[1 + (2 << 8) + (3 << 16), 250 + (7 << 16)]]
    grey = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)
    assert image_beats(grey) == [[0, 1, 2, 3]]


def test_decode_raster_and_group_major_by_hand():
    # a 1x2 map of 4 channels, 2 lanes of 4-bit signed values a beat
    lane = lambda a, b: (a & 15) | ((b & 15) << 4)  # noqa: E731
    spec = {"shape": [4, 1, 2], "lanes": 2, "bits": 4, "signed": True}
    want = np.array([[[1, -2, 3, -4], [5, -6, 7, -8]]])              # (H, W, C)
    raster = [lane(1, -2), lane(3, -4), lane(5, -6), lane(7, -8)]
    assert np.array_equal(decode_frame(raster, {**spec, "order": "raster"}), want)
    # group-major: channels 0-1 of both pixels, then channels 2-3 of both pixels
    grouped = [lane(1, -2), lane(5, -6), lane(3, -4), lane(7, -8)]
    assert np.array_equal(decode_frame(grouped, {**spec, "order": "group-major"}), want)
    assert decode_frame(raster[:3], {**spec, "order": "raster"}) is None


def test_compare_counts_every_value_and_missing_frames():
    spec = {"shape": [2, 1, 1], "order": "raster", "lanes": 2, "bits": 8, "signed": False}
    expect = np.array([[[[3, 4]]], [[[5, 6]]]])
    good = compare([[3 | 4 << 8], [5 | 6 << 8]], expect, spec)
    assert (good["compared"], good["mismatches"]) == (4, 0)
    bad = compare([[3 | 9 << 8]], expect, spec)
    assert (bad["compared"], bad["mismatches"], bad["first_bad_frame"]) == (4, 3, 0)


def test_steady_period_uses_the_unstalled_tail():
    ends = [10, 500, 900] + [1000, 1300, 1400, 1500, 1600, 1700]
    assert steady_period(ends, 3) == 100
    assert steady_period(ends[:4], 3) is None


def test_not_an_assemble_output(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"cnn-ip: simulate: {tmp_path / 'missing'}: not a directory\n"
    assert main(["simulate", str(tmp_path)]) == 2
    assert "no plan.yaml (not a cnn-ip assemble output)" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path), "--simulator", "modelsim"]) == 2


def test_an_unreadable_model_is_one_line(tmp_path, capsys):
    from pathlib import Path
    (tmp_path / "rtl").mkdir()
    (tmp_path / "plan.yaml").write_text(Path("examples/digits.yaml").read_text())
    (tmp_path / "rtl" / "digits.v").write_text("")
    (tmp_path / "digits.json").write_text("{}")
    (tmp_path / "model.npz").write_text("not an archive")
    assert main(["simulate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnn-ip: simulate: {tmp_path / 'model.npz'}: unreadable: ") and \
        err.count("\n") == 1, err


TINY = """name: tiny
input: {channels: 1, height: 8, width: 8, bits: 8}
dataset: digits
device: ecp5-85f
clock_mhz: 100
layers:
  - {type: conv, out: 4, k: 3, pad: 1, weights: ternary, act_bits: 4}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: int4}
"""


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    """An assemble output's files as simulate reads them: plan, model and report from
    `cnn-ip assemble --report-only`, with a stand-in top and the sidecar's stream shapes."""
    root = tmp_path_factory.mktemp("assembled")
    (root / "tiny.yaml").write_text(TINY)
    assert main(["assemble", str(root / "tiny.yaml"), "-o", str(root / "a"), "--quiet",
                 "--random-weights", "--report-only", "--cache", str(root / "cache")]) == 0
    (root / "a" / "rtl").mkdir()
    (root / "a" / "rtl" / "tiny.v").write_text("module tiny(); endmodule\n")
    output = {"shape": [10, 1, 1], "order": "raster", "lanes": 10, "bits": 20, "signed": True}
    (root / "a" / "tiny.json").write_text(json.dumps({"top": "tiny", "output": output}))
    return root / "a"


def damaged(directory, name, content):
    if isinstance(content, bytes):
        (directory / name).write_bytes(content)
    else:
        (directory / name).write_text(content)


def other_network(directory):
    (directory / "plan.yaml").write_text(TINY.replace("act_bits: 4", "act_bits: 3"))


def sidecar_output(directory, **change):
    sidecar = json.loads((directory / "tiny.json").read_text())
    sidecar["output"].update(change)
    (directory / "tiny.json").write_text(json.dumps(sidecar))


DAMAGE = [  # each was a traceback, or went on to simulate a design it could not check
    (lambda d: damaged(d, "model.npz", b""), "model.npz: unreadable: No data left in file"),
    (other_network, "model.npz: layer conv0 is ('conv0', 'conv', (1, 8, 8), (4, 8, 8), "
                    "'ternary', 4), the plan says ('conv0', 'conv', (1, 8, 8), (4, 8, 8), "
                    "'ternary', 3) (name, type, in, out, weights, act_bits): not the network "
                    "of plan.yaml; assemble again"),
    (lambda d: damaged(d, "tiny.json", "{"), "tiny.json: not JSON: Expecting property name"),
    (lambda d: damaged(d, "tiny.json", "[]"), "tiny.json: must hold a JSON object, got list"),
    (lambda d: damaged(d, "tiny.json", '{"top": "tiny"}'),
     "tiny.json: needs top and output {bits, lanes, order, shape, signed} (assemble again)"),
    (lambda d: sidecar_output(d, shape=[7, 1, 1]),
     "tiny.json: output.shape [7, 1, 1] is not model.npz's output [10, 1, 1] (assemble again)"),
    (lambda d: damaged(d, "assemble_report.json", "[]"),
     "assemble_report.json: must hold a JSON object, got list"),
    (lambda d: damaged(d, "assemble_report.json", "{"), "assemble_report.json: not JSON: "),
]


@pytest.mark.parametrize("damage,message", DAMAGE, ids=range(len(DAMAGE)))
def test_a_damaged_assemble_output_is_one_line(assembled, tmp_path, capsys, damage, message):
    import shutil
    directory = tmp_path / "a"
    shutil.copytree(assembled, directory)
    damage(directory)
    before = sorted(directory.rglob("*"))
    assert main(["simulate", str(directory), "--simulator", "icarus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnn-ip: simulate: {directory}/{message}") and err.count("\n") == 1, err
    assert sorted(directory.rglob("*")) == before


@pytest.mark.xdist_group("digits")  # one worker: the second reuses the first's quantize
@pytest.mark.first
def test_digits_assembled_and_simulated_bit_exact_on_all_test_images(tmp_path, capsys,
                                                                    monkeypatch):
    """The real flow: `cnn-ip assemble` of the digits plan (:func:`digits_plan`, quantized
    into the default cache, reused when warm), then `cnn-ip simulate --images 360` under
    random stalls."""
    out = tmp_path / "digits"
    plan = digits_plan(tmp_path)
    assert main(["assemble", str(plan), "-o", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["simulate", str(out), "--images", "360", "--seed", "1",
                 "--simulator", "verilator"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "assemble_report.json").read_text())
    sidecar = json.loads((out / "digits.json").read_text())
    outputs = 10 * (360 + 8)                    # 10 logits an image, stalled + steady frames
    assert f"values compared {outputs}, mismatches 0" in printed
    accuracy = re.search(r"top-1 accuracy: fp32 ([\d.]+), integer model ([\d.]+), RTL ([\d.]+)\n",
                         printed)
    fp32, integer, rtl = (float(v) for v in accuracy.groups())
    assert rtl == integer > 0.9
    assert fp32 == pytest.approx(report["quantized_accuracy"]["fp32"], abs=5e-5) and fp32 > 0.9
    measured = float(printed.split("measured ")[1].split(",")[0])
    assert abs(measured - report["cycles_per_frame"]) <= 0.05 * report["cycles_per_frame"]
    assert sidecar["input"] == {"shape": [1, 8, 8], "order": "raster", "lanes": 1, "bits": 8,
                                "signed": False}
    # the same outputs with one bit flipped in image 5: reported, exit status 1
    from cnn_ip import simulate_cmd
    recorded = json.loads((out / "sim_build" / "verilator" / "result.json").read_text())
    recorded["frames"][5][3] ^= 1 << 4
    recorded["build_s"] = 0.0
    monkeypatch.setattr(simulate_cmd, "run_rtl", lambda *a, **k: recorded)
    assert main(["simulate", str(out), "--images", "360", "--simulator", "verilator"]) == 1
    assert "mismatches 1 (first at image 5)" in capsys.readouterr().out


def test_offchip_bytes_exact_only_when_every_frame_read_every_group_once():
    from cnn_ip.simulate_cmd import offchip_check
    axi = [{"layer": "conv3", "prefix": "m_axi_conv3", "map_bytes": 320, "planned_bytes": 320},
           {"layer": "dense5", "prefix": "m_axi_dense5", "map_bytes": 64, "planned_bytes": None}]
    rows = offchip_check(axi, {"rd_bytes": {"m_axi_conv3": 3200, "m_axi_dense5": 640}}, 10)
    assert [(r["per_frame"], r["exact"]) for r in rows] == [(320, True), (64, True)]
    short = offchip_check(axi, {"rd_bytes": {"m_axi_conv3": 3200 - 64, "m_axi_dense5": 640}}, 10)
    assert [r["exact"] for r in short] == [False, True]
    wrong_plan = offchip_check([{**axi[0], "planned_bytes": 256}],
                               {"rd_bytes": {"m_axi_conv3": 3200}}, 10)
    assert not wrong_plan[0]["exact"]
    assert not offchip_check(axi[:1], {}, 10)[0]["exact"]          # no counter read back


@pytest.mark.xdist_group("digits")  # one worker: the second reuses the first's quantize
@pytest.mark.first
def test_digits_with_frame_layers_bit_exact_and_offchip_bytes_exact(tmp_path, capsys):
    """examples/digits_frame.yaml (conv 64, conv 128 and the dense frame-based; the model
    of :func:`digits_plan` from the quantize cache) assembled by the CLI and simulated on 24 test
    images: an AxiRam behind every m_axi_<layer>_ with random pauses on every channel,
    every value bit-exact, each layer's bytes read a frame equal to the planner's."""
    import argparse

    from cnn_ip.assemble_cmd import quantized_in_cache
    from cnn_ip.plan import load_plan
    digits = digits_plan(tmp_path)
    _, qdir = quantized_in_cache(load_plan(digits), digits.read_text(),
                                 argparse.Namespace(cache=None, quiet=True))
    out = tmp_path / "digits_frame"
    assert main(["assemble", "examples/digits_frame.yaml", "-o", str(out), "--model",
                 str(qdir), "--quiet"]) == 0
    assert "weights.bin, memory_map.json" in capsys.readouterr().out
    report = json.loads((out / "assemble_report.json").read_text())
    sidecar = json.loads((out / "digits_frame.json").read_text())
    memory_map = json.loads((out / "memory_map.json").read_text())
    frames = ["conv3", "conv5", "dense7"]
    assert [s["layer"] for s in sidecar["stages"] if s["dataflow"] == "frame"] == frames
    assert list(memory_map["layers"]) == frames and memory_map["base"] == 0
    names = {p["name"] for p in sidecar["ports"]}
    assert {"error", *(f"{x}_rd_bytes" for x in frames),
            *(f"m_axi_{x}_araddr" for x in frames)} <= names
    planned = {x["name"]: x["offchip_bytes"] for x in report["layers"]}
    for layer in frames:
        assert planned[layer] == sum(n for _, n in memory_map["layers"][layer]["groups"]) > 0
    assert main(["simulate", str(out), "--images", "24", "--seed", "2",
                 "--simulator", "verilator"]) == 0
    printed = capsys.readouterr().out
    assert f"values compared {10 * (24 + 8)}, mismatches 0" in printed
    for layer in frames:
        want = planned[layer]
        assert (f"off-chip bytes per frame, {layer}: measured {want} ({want * 32} in 32 "
                f"frames), planned {want}, memory map {want}\n") in printed
    assert "MISMATCH" not in printed and "error:" not in printed


def test_verilator_build_makes_only_the_top_ports_public(tmp_path):
    from cnn_ip.export import read_ports
    from cnn_ip.simulate_cmd import CXX_OPT, lean_verilator_build
    verilog = tmp_path / "net.v"
    verilog.write_text("module net (\n    aclk,\n    aresetn,\n    m_axis_out_tdata\n);\n"
                       "input aclk;\ninput aresetn;\noutput [7:0] m_axis_out_tdata;\n"
                       "reg [7:0] inner;\nendmodule\n")
    ports = [p["name"] for p in read_ports(verilog, "net")]
    assert ports == ["aclk", "aresetn", "m_axis_out_tdata"]

    class Runner:                  # cocotb's Verilator runner: the verilator and make steps
        def _build_command(self):
            return [["verilator", "-cc", "--public-flat-rw", "net.v"], ["make", "-j", "2"]]
    runner, vlt = Runner(), tmp_path / "build" / "public.vlt"
    lean_verilator_build(runner, "net", ports, vlt)
    verilate, make = runner._build_command()
    assert verilate == ["verilator", "-cc", str(vlt), "net.v"]
    assert make[-2:] == [f"OPT_FAST={CXX_OPT}", f"OPT_GLOBAL={CXX_OPT}"]
    assert vlt.read_text().splitlines() == ["`verilator_config"] + [
        f'public_flat_rw -module "net" -var "{p}"' for p in ("aclk", "aresetn", "m_axis_out_tdata")]

    Runner._build_command = lambda self: [["verilator", "-cc", "net.v"], ["make"]]
    changed = Runner()
    lean_verilator_build(changed, "net", ["aclk"], vlt)
    with pytest.raises(RuntimeError, match="no longer passes --public-flat-rw"):
        changed._build_command()
