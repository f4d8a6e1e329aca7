"""``cnn-ip quantize``: user errors, and a short end-to-end run whose report is recomputable
from its own files and identical for the same seed."""
import json
import re

import numpy as np
import pytest
import scipy
import sklearn

from cnn_ip.cli import main
from quant import reference
from quant.data import load_dataset
from quant.rom_image import model_bits, read_rom
from quant.sparse_format import decode

PLAN = """name: tiny
input: {channels: 1, height: 8, width: 8, bits: 8}
dataset: digits
layers:
  - {type: conv, out: 4, k: 3, pad: 1, act: relu, bn: true, weights: int4, act_bits: 4}
  - {type: conv, out: 8, k: 3, stride: 2, pad: 1, act: relu, weights: ternary, act_bits: 3, sparsity: auto}
  - {type: maxpool, k: 2}
  - {type: dense, out: 10, weights: ternary, sparsity: auto}
quantize: {seed: 1, epochs: 3, qat_epochs: 1, search_epochs: 1, final_epochs: 1, evaluations: 2}
"""
# parameters of the fp32 model, counted by hand: conv 4*9+4, conv 8*36+8, dense 10*32+10
FP32_PARAMS = 40 + 296 + 330


def test_bad_plan_is_one_line_and_writes_nothing(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("act_bits: 3", "act_bits: 12"))
    out = tmp_path / "out"
    assert main(["quantize", str(plan), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"cnn-ip: {plan}:6: layers[1].act_bits: must be an integer in 1..8, got 12\n"
    assert not out.exists()


def test_a_plan_without_a_dataset_is_one_line_and_writes_nothing(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("dataset: digits\n", ""))
    out = tmp_path / "out"
    assert main(["quantize", str(plan), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"cnn-ip: {plan}:1: dataset: missing (cnn-ip quantize needs it)\n"
    assert not out.exists()


def test_refuses_a_foreign_non_empty_directory(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    assert main(["quantize", str(plan), "-o", str(tmp_path / "out")]) == 2
    assert "not a previous quantize output" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_an_output_through_a_file_or_unnamed_is_one_line(tmp_path, capsys, monkeypatch):
    """-o through a file was a FileExistsError traceback; -o '' took the working directory
    for the output."""
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    (tmp_path / "f").write_text("kept")
    out = tmp_path / "f" / "sub"
    assert main(["quantize", str(plan), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"cnn-ip: quantize: -o {out}: {tmp_path / 'f'} exists "
                                       "and is not a directory\n")
    assert (tmp_path / "f").read_text() == "kept"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["quantize", str(plan), "-o", ""]) == 2
    assert capsys.readouterr().err == "cnn-ip: quantize: -o : must name a directory, got ''\n"
    assert list((tmp_path / "cwd").iterdir()) == []


def test_an_unwritable_output_is_one_line(tmp_path, capsys, monkeypatch):
    """Was a traceback (e.g. -o /proc/x, or a directory without write permission)."""
    import tempfile

    def unwritable(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))
    monkeypatch.setattr(tempfile, "mkdtemp", unwritable)
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    assert main(["quantize", str(plan), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"cnn-ip: quantize: cannot write {tmp_path}: Permission denied\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.yaml"]


@pytest.mark.parametrize("flags,message", [
    (["--threads", "0"], "--threads: must be an integer in 1..1000000000, got 0"),
    (["--seed", "4294967296"], "--seed: must be an integer in 0..4294967295, got 4294967296"),
    (["--evaluations", "-1"], "--evaluations: must be an integer in 0..1000000000, got -1"),
    (["--accuracy-budget", "nan"], "--accuracy-budget: must be a finite number, got nan"),
    (["--accuracy-budget", "-0.5"], "--accuracy-budget: must be >= 0, got -0.5")])
def test_bad_flag(tmp_path, capsys, flags, message):
    # the plan's ranges (quant.options.RANGES), named as the flag
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o"), *flags]) == 2
    assert capsys.readouterr().err == f"cnn-ip: quantize: {message}\n"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags,message", [
    (["--confirm", "3", "--evaluations", "8"],
     "cnn-ip: quantize: confirm: must be a multiple of 2 leaving at least 2 of evaluations (8) "
     "to the search, got 3\n"),
    (["--confirm", "2"],          # the plan's 2 evaluations leave none for the search
     "cnn-ip: quantize: confirm: must be a multiple of 2 leaving at least 2 of evaluations (2) "
     "to the search, got 2\n"),
    (["--confirm", "2", "--evaluations", "3"],   # 1 search point for the 2 candidates
     "cnn-ip: quantize: confirm: must be a multiple of 2 leaving at least 2 of evaluations (3) "
     "to the search, got 2\n")])
def test_bad_confirmation_runs(tmp_path, capsys, flags, message):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o"), *flags]) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "o").exists()


def test_bad_confirmation_runs_in_the_plan_are_placed_in_it(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, confirm: 2}"))
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"cnn-ip: {plan}:9: quantize.confirm: must be a multiple of 2 leaving at least 2 of "
        "evaluations (2) to the search, got 2\n")
    # a flag that makes the same mistake is named as the setting, as before
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o"), "--confirm", "2"]) == 2
    assert capsys.readouterr().err.startswith("cnn-ip: quantize: confirm: must be")
    assert not (tmp_path / "o").exists()


def test_chebyshev_without_an_accuracy_weight_is_one_line(tmp_path, capsys):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, scalarization: chebyshev}"))
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o")]) == 2
    # the plan alone gives it: placed at its quantize: line (the 9th)
    assert PLAN.splitlines()[8].startswith("quantize:")
    assert capsys.readouterr().err == (
        f"cnn-ip: {plan}:9: quantize.accuracy_weight: the chebyshev scalarization needs one "
        "above 0 (the slope of its ray), got 0.0\n")
    assert not (tmp_path / "o").exists()


def test_a_size_budget_the_fixed_layers_fill_is_one_line_and_writes_nothing(tmp_path, capsys):
    # known only once the base model's bits are: the error comes after training, and the
    # scratch directory goes with it
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, size_budget: 100}"))
    # the directories the run would have made are gone too
    assert main(["quantize", str(plan), "-o", str(tmp_path / "new" / "deep" / "o"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(re.escape(f"cnn-ip: {plan}:9: quantize.size_budget: 100 bits leaves "
                                  "nothing for the searched layers (the others take ")
                        + r"\d+\)\n", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_a_filled_size_budget_holds_the_chosen_model(tmp_path, capsys):
    """size_budget_mode fill: the chosen point's layers take the weight bits the search
    gave them (ternary: fine-tuning moves no weight to or from zero), so the model fits."""
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, size_budget: 1200, "
                                                    "size_budget_mode: fill}"))
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o"), "--quiet"]) == 0
    report = json.loads((tmp_path / "o" / "quant_report.json").read_text())
    assert report["base_bits"] > 1200 >= report["model_bits"]
    assert "size_budget_mode fill" in report["objective"]
    best = report["search"]["best_bayes"]
    rows = {row["name"]: row for row in report["layers"]}
    assert [names for names, _ in best["fill"]] == [["conv1"], ["dense3"]]
    for (name,), bits in best["fill"]:
        assert rows[name]["weight_bits"] <= bits
    # a budget the auto layers cannot get down to, and the mode without a budget
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, size_budget: 300, "
                                                    "size_budget_mode: fill}"))
    capsys.readouterr()
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o2"), "--quiet"]) == 2
    assert re.fullmatch(re.escape(f"cnn-ip: {plan}:9: quantize.size_budget: 300 bits cannot "
                                  "be filled: with every auto layer at sparsity 0.95 the "
                                  "model takes ") + r"\d+ bits, and the per-layer searches "
                        r"of size_budget_mode fill leave 3 bits of the budget\n",
                        capsys.readouterr().err)
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, size_budget_mode: fill}"))
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o2"), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"cnn-ip: {plan}:9: quantize.size_budget_mode: fill "
                                       "needs a size_budget\n")
    assert not (tmp_path / "o2").exists()


def test_without_evaluations_the_auto_layers_stay_at_the_base_sparsity(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 0, base_sparsity: 0.4}"))
    assert main(["quantize", str(plan), "-o", str(tmp_path / "o"), "--quiet"]) == 0
    report = json.loads((tmp_path / "o" / "quant_report.json").read_text())
    auto = [row for row in report["layers"] if row["auto"]]
    assert [row["name"] for row in auto] == ["conv1", "dense3"]
    for row in auto:
        assert row["target_sparsity"] == 0.4
        # pruned so, to the nearest whole weight (a code 0 may add zeros)
        assert row["sparsity"] >= 0.4 - 0.5 / np.prod(row["shape"])
    # what its figures depend on beyond the seed (docs/quant.md)
    env = report["environment"]
    assert (env["numpy"], env["scipy"], env["scikit-learn"]) == (
        np.__version__, scipy.__version__, sklearn.__version__)
    assert env["blas"] and all(isinstance(entry, str) for entry in env["blas"])


def test_string_and_numeric_settings_from_the_plan(tmp_path):
    import argparse

    from cnn_ip.plan import load_plan
    from cnn_ip.quantize_cmd import FLAGS, settings_for
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 6, codes: all, prune_steps: 3, "
                                                    "confirm: 2}"))
    args = argparse.Namespace(quiet=True, **{flag: None for flag in FLAGS})
    settings = settings_for(load_plan(plan), args)
    assert (settings.codes, settings.prune_steps, settings.evaluations, settings.confirm) == \
        ("all", 3, 6, 2)


def test_end_to_end_report_is_recomputable_and_reproducible(tmp_path):
    plan = tmp_path / "p.yaml"
    plan.write_text(PLAN)
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["quantize", str(plan), "-o", str(out), "--quiet"]) == 0
    text = (outs[0] / "quant_report.json").read_text()
    assert text == (outs[1] / "quant_report.json").read_text()
    report = json.loads(text)
    out = outs[0]
    # model bits: exactly the sum over the ROM sidecars, and the sum of the layer rows
    assert report["model_bits"] == model_bits(out) == sum(row["bits"] for row in report["layers"])
    assert report["fp32_bits"] == 32 * FP32_PARAMS
    assert report["compression"] == round(report["fp32_bits"] / report["model_bits"], 4)
    # integer accuracy: load model.npz into the reference model
    data = load_dataset()
    model = reference.load_model(out / "model.npz")
    z = reference.run(model, data.test.x)
    assert report["int_accuracy"] == round(float(np.mean(z.argmax(1) == data.test.y)), 6)
    assert report["agreement"] == 1.0
    # the weight ROMs decode to the model's weights; per-layer rows match model.npz
    for row, layer in zip(report["layers"], [m for m in model if m.W is not None]):
        words, sidecar = read_rom(out / f"{row['name']}_w.json")
        assert np.array_equal(decode(words, sidecar), layer.W)
        assert row["sparsity"] == round(float(np.mean(layer.W == 0)), 6)
        assert {"name", "weights", "act_bits", "sparsity", "bits"} <= set(row)
    assert len(report["search"]["bayes"]) == len(report["search"]["uniform"]) == 2
    assert "objective" in report and (out / "search.png").stat().st_size > 1000
    # a rerun replaces a previous output; with confirmation runs (the last 2 of each
    # search's 4 evaluations re-run its 2 lowest-objective points, new seeds) and the
    # plan's chebyshev scalarization and size budget
    assert "max(S, L)" not in report["objective"]
    plan.write_text(PLAN.replace("evaluations: 2}", "evaluations: 2, accuracy_weight: 0.1, "
                                                    "scalarization: chebyshev, utopia: 2, "
                                                    "size_budget: 100000}"))
    assert main(["quantize", str(plan), "-o", str(out), "--quiet", "--evaluations", "4",
                 "--confirm", "2"]) == 0
    again = json.loads((out / "quant_report.json").read_text())
    assert "max(S, L) + 0.05 * (S + L)" in again["objective"]
    assert "+ 2)" in again["objective"]                       # the utopia's 2 points
    assert "- 100000)/100000)" in again["objective"]          # the plan's size budget
    assert model_bits(out) == again["model_bits"]
    for method in ("bayes", "uniform"):
        records = again["search"][method]
        first = sorted(records[:2], key=lambda r: (r["objective"], r["index"]))
        assert [r["confirms"] for r in records] == [None, None] + [r["index"] for r in first]
    assert again["search"]["best_bayes"]["runs"] == again["search"]["best_uniform"]["runs"] == 2
    best, chosen = again["search"]["best_bayes"], again["search"]["chosen"]
    runs = [r for r in again["search"]["bayes"] if best["index"] in (r["index"], r["confirms"])]
    assert best["objective"] == pytest.approx(sum(r["objective"] for r in runs) / 2, abs=1e-6)
    # the exported point, measured after the final fine-tuning, and nothing of the search's
    assert (chosen["index"], chosen["sparsity"], chosen["structure"]) == \
        (best["index"], best["sparsity"], best["structure"])
    assert (chosen["bits"], round(chosen["val_accuracy"], 6)) == \
        (again["model_bits"], again["int_val_accuracy"])
    assert not {"objective", "val_measure", "val_loss", "runs"} & set(chosen)
