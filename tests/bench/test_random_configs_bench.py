"""bench/random_configs.py: its draws are valid often enough and repeatable, a failure of
the user's lint is counted as one, and the table says so."""
import importlib.util
import random
from pathlib import Path

from cnn_ip.block_cmd import all_blocks

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("bench_random_configs",
                                              ROOT / "bench" / "random_configs.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_draws_repeat_for_a_seed_and_match_the_fold():
    block_def = all_blocks()["sparse_decoder"]
    first = bench.draw_block(random.Random("s:1"), block_def)
    again = bench.draw_block(random.Random("s:1"), block_def)
    assert bench.scalar_view(first) == bench.scalar_view(again)
    assert (first["weights_file"] == again["weights_file"]).all()
    cout, reduce = first["weights_file"].shape
    assert cout % first["lanes"] == 0 and reduce % first["simd"] == 0


def test_every_block_it_sweeps_has_valid_draws(capsys):
    assert bench.main(["blocks", "--count", "1", "--only", "axis_register",
                       "width_adapter", "requant"]) == 0
    table = capsys.readouterr().out
    assert "| requant | 1 | 0 |" in table and "| width_adapter | 1 | 0 |" in table


def test_a_lint_failure_is_counted_and_fails_the_run(monkeypatch, capsys):
    monkeypatch.setattr(bench, "lint_command", lambda directory, top: ["false"])
    assert bench.main(["blocks", "--count", "2", "--only", "axis_register"]) == 1
    out = capsys.readouterr().out
    assert "FAIL axis_register" in out and "| axis_register | 0 | 2 |" in out
