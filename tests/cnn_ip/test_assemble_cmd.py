"""``cnn-ip assemble``: what it writes, byte-identical reruns, and bad input (exit 2, one
line, nothing written)."""
import json
from pathlib import Path

import pytest

from cnn_ip.assemble_cmd import random_model, save_npz
from cnn_ip.cli import main
from cnn_ip.plan import parse_plan

PLAN = """name: tiny
input: {channels: 1, height: 8, width: 8, bits: 8}
dataset: digits
device: ecp5-85f
clock_mhz: 100
layers:
  - {type: conv, out: 4, k: 3, pad: 1, weights: ternary, act_bits: 4, sparsity: auto}
  - {type: maxpool, k: 2}
  - {type: conv, out: 8, k: 3, pad: 1, act: leaky, weights: binary, act_bits: 3}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: int4}
"""


@pytest.fixture
def plan_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_IP_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.yaml"
    path.write_text(PLAN)
    return path


def assemble(*argv):
    return main(["assemble", *map(str, argv), "--quiet"])


def test_report_only_writes_plan_model_report_plot(plan_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert assemble(plan_file, "-o", out, "--random-weights", "--report-only") == 0
    assert sorted(p.name for p in out.iterdir()) == ["assemble_report.json", "layers.png",
                                                      "model.npz", "plan.yaml"]
    assert (out / "plan.yaml").read_text() == PLAN
    report = json.loads((out / "assemble_report.json").read_text())
    assert report["device"]["name"] == "ecp5-85f" and report["clock_mhz"] == 100
    assert [x["name"] for x in report["layers"]] == ["conv0", "maxpool1", "conv2", "maxpool3", "dense4"]
    assert report["fps"] == pytest.approx(100e6 / report["cycles_per_frame"], rel=1e-6)
    assert sum(x["bottleneck"] for x in report["layers"]) == 1
    assert report["notes"][0].startswith("random weights (seed 0)")
    assert "wrote" in capsys.readouterr().out
    from quant.reference import load_model
    assert [x.name for x in load_model(out / "model.npz")] == [x["name"] for x in report["layers"]]


def test_byte_identical_reruns_and_replacing_a_previous_output(plan_file, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert assemble(plan_file, "-o", first, "--random-weights", "--report-only") == 0
    assert assemble(plan_file, "-o", second, "--random-weights", "--report-only") == 0
    for item in first.iterdir():
        assert item.read_bytes() == (second / item.name).read_bytes(), item.name
    assert assemble(plan_file, "-o", first, "--random-weights", "--report-only", "--seed", "1") == 0
    assert (first / "model.npz").read_bytes() != (second / "model.npz").read_bytes()


def test_model_from_a_quantize_directory(plan_file, tmp_path):
    plan = parse_plan(PLAN)
    qdir = tmp_path / "q"
    qdir.mkdir()
    save_npz(qdir / "model.npz", random_model(plan, seed=5))
    out = tmp_path / "out"
    assert assemble(plan_file, "-o", out, "--model", qdir, "--report-only") == 0
    report = json.loads((out / "assemble_report.json").read_text())
    assert report["model"] == f"quantized: {qdir}"
    assert (out / "model.npz").read_bytes() == (qdir / "model.npz").read_bytes()


BAD = [
    (["nope.yaml"], r"cannot read"),
    (["PLAN", "--model", "missing_dir"], r"--model missing_dir: no model.npz"),
    (["PLAN", "--model", "x", "--random-weights"], r"not allowed with argument"),
    (["PLAN", "--random-weights", "--seed", "-1"], r"^cnn-ip: assemble: --seed: must be an integer >= 0, got -1$"),
]


def bad(capsys, argv, out):
    assert assemble(*argv, "-o", out, "--report-only") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnn-ip"), err
    assert not out.exists()
    return err


@pytest.mark.parametrize("argv,message", BAD, ids=range(len(BAD)))
def test_bad_arguments(plan_file, tmp_path, capsys, argv, message):
    argv = [plan_file if a == "PLAN" else a for a in argv]
    import re
    assert re.search(message, bad(capsys, argv, tmp_path / "out").strip())


@pytest.mark.parametrize("edit,message", [
    (("device: ecp5-85f\n", ""), "tiny.yaml:1: device: missing (the planner needs it)"),
    (("device: ecp5-85f", "device: vc707"), "tiny.yaml:4: device: must be one of"),
    # (block RAM no longer: the frame data flow keeps a layer's weights off-chip)
    (("clock_mhz: 100\n", "clock_mhz: 100\nlimits: {lut: 0.001}\n"),
     "tiny.yaml:4: device: does not fit ecp5-85f: LUT needs"),
    (("sparsity: auto}", "sparsity: auto, fold: {lanes: 3, simd: 1}}"),
     "tiny.yaml:7: layers[0].fold.lanes: must divide the layer's 4 output channels, got 3"),
    (("name: tiny", "name: assemble_report"),
     "tiny.yaml:1: name: the top's sidecar assemble_report.json would overwrite the report"),
    # the top's name: no keyword, no primitive model's (was a traceback from the conversion)
    (("name: tiny", "name: module"),
     "tiny.yaml:1: name: names the Verilog top and 'module' is a Verilog keyword"),
    (("name: tiny", "name: logic"),
     "tiny.yaml:1: name: names the Verilog top and 'logic' is a Verilog keyword"),
    (("name: tiny", "name: DP16KD"),
     "tiny.yaml:1: name: names the Verilog top and 'DP16KD' is a module the output holds"),
    (("  - {type: maxpool, k: 2}\n", ""),
     "tiny.yaml:9: layers[2].type: a row-based dense layer's window is its whole input map"),
])
def test_bad_plans(plan_file, tmp_path, capsys, edit, message):
    plan_file.write_text(PLAN.replace(*edit))
    err = bad(capsys, [plan_file, "--random-weights"], tmp_path / "out")
    assert err.startswith(f"cnn-ip: {plan_file.parent}/{message}") or message in err, err


def test_quantizing_needs_a_dataset(plan_file, tmp_path, capsys):
    plan_file.write_text(PLAN.replace("dataset: digits\n", ""))
    err = bad(capsys, [plan_file], tmp_path / "out")
    assert "tiny.yaml:1: dataset: missing (assemble without --model or --random-weights" in err


def test_without_quiet_an_error_is_still_one_clean_line(plan_file, tmp_path, capsys):
    """stderr captured (not a terminal): no progress bar text in front of the error."""
    out = tmp_path / "out"
    assert main(["assemble", str(plan_file), "--model", str(tmp_path / "none"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"cnn-ip: assemble: --model {tmp_path / 'none'}: no "
                                       "model.npz (give a `cnn-ip quantize` output directory)\n")
    assert not out.exists()


def test_a_model_of_another_plan_is_refused(plan_file, tmp_path, capsys):
    other = parse_plan(PLAN.replace("out: 8", "out: 16"))
    qdir = tmp_path / "q"
    qdir.mkdir()
    save_npz(qdir / "model.npz", random_model(other))
    err = bad(capsys, [plan_file, "--model", qdir], tmp_path / "out")
    assert "layer conv2 is" in err and "quantize this plan" in err


def damage(layers, index, **change):
    import dataclasses
    return [dataclasses.replace(x, **change) if i == index else x for i, x in enumerate(layers)]


MODEL_DAMAGE = [  # (layer index, change, message); each was accepted, or a traceback
    (0, {"W": "full 7"}, "layer conv0: W: ternary weights must be -1, 0 or +1; found 7 at [0, 0]"),
    (0, {"W": "first 3 columns"}, "layer conv0: W is 4x3, the layer needs 4x9"),
    (2, {"S": 0}, "layer conv2: S must be an integer in 1..62 (the requantizer's shift), got 0"),
    (2, {"lo": 10, "hi": -10}, "layer conv2: lo, hi are 10, -10; 3-bit leaky outputs are (-4, 3)"),
    (4, {"final": False}, "layer dense4: final is False, the plan's last layer is dense4"),
    (4, {"M": "negative"}, "layer dense4: M and M_neg must be >= 0 (Contract 2)"),
]


@pytest.mark.parametrize("index,change,message", MODEL_DAMAGE, ids=range(len(MODEL_DAMAGE)))
def test_a_damaged_model_is_refused(plan_file, tmp_path, capsys, index, change, message):
    layers = random_model(parse_plan(PLAN), seed=5)
    layer = layers[index]
    arrays = {"full 7": lambda: layer.W * 0 + 7, "first 3 columns": lambda: layer.W[:, :3],
              "negative": lambda: -layer.M - 1}
    change = {k: arrays[v]() if isinstance(v, str) else v for k, v in change.items()}
    qdir = tmp_path / "q"
    qdir.mkdir()
    save_npz(qdir / "model.npz", damage(layers, index, **change))
    err = bad(capsys, [plan_file, "--model", qdir], tmp_path / "out")
    assert err == f"cnn-ip: assemble: {qdir / 'model.npz'}: {message}: quantize this plan\n"


def test_a_foreign_output_directory_is_left_alone(plan_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    assert assemble(plan_file, "-o", out, "--random-weights", "--report-only") == 2
    assert "not empty and not a previous assemble output" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".out.")]


def test_an_output_through_a_file_or_unnamed_is_one_line(plan_file, tmp_path, capsys,
                                                        monkeypatch):
    """-o through a file was a FileExistsError traceback; -o '' took the working directory
    for the output (and replacing it, removed it)."""
    (tmp_path / "f").write_text("kept")
    err = bad(capsys, [plan_file, "--random-weights"], tmp_path / "f" / "sub")
    assert err == (f"cnn-ip: assemble: -o {tmp_path / 'f' / 'sub'}: {tmp_path / 'f'} exists "
                   "and is not a directory\n")
    assert (tmp_path / "f").read_text() == "kept"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert assemble(plan_file, "-o", "", "--random-weights", "--report-only") == 2
    assert capsys.readouterr().err == "cnn-ip: assemble: -o : must name a directory, got ''\n"
    assert list((tmp_path / "cwd").iterdir()) == []
    # "-o ." was refused only after the whole run, when the output could not be renamed
    for out in (".", ".."):
        assert assemble(plan_file, "-o", out, "--random-weights") == 2
        assert capsys.readouterr().err == (f"cnn-ip: assemble: -o {out}: must name a directory "
                                           "of its own (the output replaces it whole), not . "
                                           "or ..\n")
    assert list((tmp_path / "cwd").iterdir()) == []


def test_a_cache_through_a_file_is_one_line(plan_file, tmp_path, capsys):
    """Was a FileExistsError traceback after the model was made."""
    (tmp_path / "f").write_text("kept")
    err = bad(capsys, [plan_file, "--random-weights", "--cache", tmp_path / "f"],
              tmp_path / "out")
    assert err == f"cnn-ip: assemble: cache {tmp_path / 'f'}: {tmp_path / 'f'} exists and is " \
                  "not a directory\n"


def test_an_unwritable_output_is_one_line(plan_file, tmp_path, capsys, monkeypatch):
    """Was a traceback (e.g. -o /proc/x, or a directory without write permission)."""
    import tempfile

    def unwritable(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))
    monkeypatch.setattr(tempfile, "mkdtemp", unwritable)
    err = bad(capsys, [plan_file, "--random-weights"], tmp_path / "out")
    assert err == f"cnn-ip: assemble: cannot write {tmp_path}: Permission denied\n"


def test_without_a_model_it_quantizes_once_into_the_cache(plan_file, tmp_path):
    plan_file.write_text(PLAN + "quantize: {seed: 1, epochs: 1, qat_epochs: 1, search_epochs: 1, "
                         "final_epochs: 1, evaluations: 2}\n")
    assert assemble(plan_file, "-o", tmp_path / "a", "--report-only") == 0
    cached = list((tmp_path / "cache" / "quantize").iterdir())
    assert len(cached) == 1 and (cached[0] / "quant_report.json").is_file()
    stamp = (cached[0] / "model.npz").stat().st_mtime_ns
    assert assemble(plan_file, "-o", tmp_path / "b", "--report-only") == 0
    assert (cached[0] / "model.npz").stat().st_mtime_ns == stamp          # reused, not redone
    report = json.loads((tmp_path / "b" / "assemble_report.json").read_text())
    assert report["model"] == "quantized (cache)"
    assert not any(note.startswith("random") for note in report["notes"])
    assert (tmp_path / "a" / "model.npz").read_bytes() == (tmp_path / "b" / "model.npz").read_bytes()


CONV_ONLY = """name: convs
input: {channels: 1, height: 8, width: 8, bits: 8}
device: ecp5-85f
clock_mhz: 100
layers:
  - {type: conv, out: 4, k: 3, pad: 1, weights: ternary, act_bits: 4, sparsity: auto}
  - {type: conv, out: 8, k: 3, stride: 2, pad: 1, act: leaky, weights: binary, act_bits: 3}
  - {type: dense, out: 10, weights: int4}
"""


def test_rtl_sidecar_and_byte_identical_conversions(tmp_path, monkeypatch):
    plan = tmp_path / "convs.yaml"
    plan.write_text(CONV_ONLY)
    runs = []
    for name in ("a", "b", "c"):               # a, b: separate caches (two conversions); c: b's
        monkeypatch.setenv("CNN_IP_CACHE", str(tmp_path / ("cache-a" if name == "a" else "cache-b")))
        assert assemble(plan, "-o", tmp_path / name, "--random-weights") == 0
        runs.append(tmp_path / name)
    a = runs[0]
    sidecar = json.loads((a / "convs.json").read_text())
    assert sidecar["top"] == "convs" and (a / "rtl" / "convs.v").is_file()
    assert sidecar["input"] == {"shape": [1, 8, 8], "order": "raster", "lanes": 1, "bits": 8,
                                "signed": False}
    assert sidecar["output"]["shape"] == [10, 1, 1] and sidecar["output"]["signed"] is True
    names = {p["name"] for p in sidecar["ports"]}
    assert {"aclk", "aresetn", "s_axis_img_tdata", "m_axis_out_tdata"} <= names
    report = json.loads((a / "assemble_report.json").read_text())
    assert report["model_bits"]["built"] == report["model_bits"]["planned"]
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    for other in runs[1:]:
        assert files == sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file())
        for item in files:
            assert (a / item).read_bytes() == (other / item).read_bytes(), item


def test_plan_mistakes_are_found_before_quantizing(plan_file, tmp_path, capsys):
    plan_file.write_text(PLAN.replace("device: ecp5-85f\n", ""))
    err = bad(capsys, [plan_file], tmp_path / "out")
    assert "tiny.yaml:1: device: missing" in err
    assert not (tmp_path / "cache" / "quantize").exists()


def test_weight_image_is_the_frame_stages_layout_at_base_0(tmp_path):
    """weights.bin + memory_map.json: quant.offchip.layout of the frame stages in stage
    order (bus 8 bytes), nothing for an all-row network."""
    from assemblies.network import StagePlan
    from cnn_ip.assemble_cmd import write_weight_image
    from quant.offchip import layout
    plan = parse_plan(PLAN, "tiny.yaml")
    layers = random_model(plan, 0)
    rows = [StagePlan(layer, lanes=2 if layer.W is not None else 1, simd=1) for layer in layers]
    assert write_weight_image(rows, tmp_path) is False
    assert not (tmp_path / "weights.bin").exists()
    framed = [StagePlan(x.layer, x.lanes, x.simd,
                        dataflow="frame" if x.layer.name in ("conv2", "dense4") else "row")
              for x in rows]
    assert write_weight_image(framed, tmp_path) is True
    want_bytes, want_map = layout([(layers[2], 2, 1), (layers[4], 2, 1)], base=0, bus_bytes=8)
    assert (tmp_path / "weights.bin").read_bytes() == want_bytes
    memory_map = json.loads((tmp_path / "memory_map.json").read_text())
    assert memory_map == json.loads(json.dumps(want_map))
    assert list(memory_map["layers"]) == ["conv2", "dense4"] and memory_map["bus_bytes"] == 8
    assert all(offset % 64 == 0 for layer in memory_map["layers"].values()
               for offset, _ in layer["groups"])
