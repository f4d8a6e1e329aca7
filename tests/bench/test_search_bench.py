"""bench/search.py: the dominance rule its table counts, the Pareto front it plots, its
table and plot from recorded searches (``--from-json``), and its input errors.  Named
apart from tests/quant/test_search.py: pytest imports test modules by their base name."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def point(bits, top1, measure=None, objective=1.0, index=0, **extra):
    return {"bits": bits, "val_accuracy": top1, "val_measure": top1 if measure is None
            else measure, "val_loss": 0.5, "objective": objective, "index": index,
            "sparsity": {"conv3": 0.5}, "structure": {"conv3": "block8"}, **extra}


@pytest.mark.parametrize("a, b, expected", [
    ((100, 0.95), (120, 0.95), True),     # fewer bits, same top-1
    ((100, 0.96), (120, 0.95), True),     # fewer bits, higher top-1
    ((120, 0.96), (120, 0.95), True),     # same bits, higher top-1
    ((120, 0.95), (120, 0.95), False),    # the same point: neither
    ((100, 0.94), (120, 0.95), False),    # fewer bits bought with top-1
    ((121, 0.99), (120, 0.95), False),    # one bit more
])
def test_dominates(a, b, expected):
    assert bench.dominates(point(*a), point(*b)) is expected


def test_dominates_smoothed_reads_the_measure():
    a, b = point(100, 0.90, measure=0.80), point(120, 0.95, measure=0.79)
    assert not bench.dominates(a, b) and bench.dominates_smoothed(a, b)


def test_pareto_front():
    points = [point(100, 0.90), point(150, 0.95), point(120, 0.89), point(150, 0.93),
              point(200, 0.95), point(90, 0.80)]
    front = [(p["bits"], p["val_accuracy"]) for p in bench.pareto(points)]
    assert front == [(90, 0.80), (100, 0.90), (150, 0.95)]


def record(seed):
    """A recorded seed: uniform's best (lowest objective) 120 bits / 95 %; the Bayesian
    best 100 / 96 % (dominates it) for seed 0, 100 / 94 % (does not) for seed 1."""
    bayes_top1 = 0.96 if seed == 0 else 0.94
    return {"seed": seed, "repeats": 1, "confirm": 0, "candidates": 2,
            "recommend": "observed", "warm": [], "objective": "minimise (made up)",
            "size_budget": None, "base": {"accuracy": 0.97},
            "search": {"bayes": [point(100, bayes_top1, objective=0.5),
                                 point(90, 0.50, objective=0.9, index=1)],
                       "uniform": [point(130, 0.96, objective=0.8),
                                   point(120, 0.95, objective=0.6, index=1)],
                       "random": [point(140, 0.97, objective=0.7)]}}


def run_bench(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "search.py"), *args],
                          cwd=cwd, capture_output=True, text=True)


def test_table_and_plot_from_records(tmp_path):
    recorded = tmp_path / "search.json"
    recorded.write_text(json.dumps([record(0), record(1)]))
    done = run_bench("--from-json", str(recorded), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {(int(line.split()[0]), line.split()[1]): line.split() for line in lines
            if line.split()[:1] in (["0"], ["1"])}
    assert rows[0, "bayes"][2:4] == ["100", "96.00"]
    assert rows[0, "uniform"][2:4] == ["120", "95.00"]
    assert rows[0, "bayes"][7] == "yes" and rows[1, "bayes"][7] == "no"
    assert "bayes best dominates uniform best in 1 of 2 seeds" in done.stdout
    assert (tmp_path / "out" / "search.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "search.json").read_text())[1]["seed"] == 1


@pytest.mark.parametrize("args, message", [
    (["--seeds", "-1"], "--seeds: "),
    (["--candidates", "0"], "--candidates"),
    (["--repeats", "0"], "--repeats: must be at least 1"),
    (["--warm", "half:block8"], "--warm: SPARSITY:STRUCTURE"),
    (["--plan", "no/such/plan.yaml"], "no/such/plan.yaml"),
    (["--from-json", "no/such/search.json"], "--from-json: no/such/search.json"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    done = run_bench(*args, "--out", str(out))
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not out.exists()
