"""Tests of ``tile_dma``.

The main tests co-simulate the converted Verilog in Icarus under cocotb against
cocotbext-axi's ``AxiRam`` (``tile_dma_cocotb/cocotb_tests.py``); here each parameter set is
converted, built and run, and the test fails when any cocotb test fails.  The rest checks
the golden model, the MyHDL model against it, lint and the command line.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from blocks.tile_dma import (BLOCK, PAGE, ReadTimeline, bursts, command_valid, encode_command,
                             golden, read_cycles, tile_beat_addresses)
from blocks.spec import ParameterError
from cnn_ip import simkit
from cnn_ip.cli import main
from cnn_ip.cosim import lint
from cnn_ip.export import generate

COCOTB_DIR = Path(__file__).parent / "tile_dma_cocotb"

CONFIGS = [
    pytest.param({"data_bits": 64, "max_burst": 16, "outstanding": 4}, id="d64-b16-o4"),
    pytest.param({"data_bits": 32, "max_burst": 1, "outstanding": 1}, id="d32-b1-o1"),
    pytest.param({"data_bits": 128, "max_burst": 256, "outstanding": 3}, id="d128-b256-o3"),
    pytest.param({"data_bits": 32, "max_burst": 5, "outstanding": 8}, id="d32-b5-o8"),
    # the read FIFO on instantiated DP16KD with their output register (DP16KD_sim.v)
    pytest.param({"data_bits": 128, "max_burst": 64, "outstanding": 4, "target": "ecp5-85f"},
                 id="d128-b64-o4-ecp5"),
]


@pytest.mark.parametrize("params", CONFIGS)
def test_against_axi_ram_in_icarus(tmp_path, monkeypatch, params):
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    generate(BLOCK, tmp_path / "rtl", **params)
    runner = get_runner("icarus")
    models = sorted((tmp_path / "rtl").glob("*_sim.v"))  # simulation models of primitives
    assert len(models) == (1 if params.get("target") == "ecp5-85f" else 0)
    runner.build(sources=[tmp_path / "rtl" / "tile_dma.v", *models], hdl_toplevel="tile_dma",
                 build_dir=tmp_path / "sim_build")
    monkeypatch.syspath_prepend(str(COCOTB_DIR))  # the runner passes sys.path on
    results = runner.test(test_module="cocotb_tests", hdl_toplevel="tile_dma",
                          build_dir=tmp_path / "sim_build", test_dir=tmp_path,
                          extra_env={"TILE_DMA_PARAMS": json.dumps(params),
                                     "COCOTB_LOG_LEVEL": "WARNING"})
    tests, failed = get_results(Path(results))
    assert tests == 3 and failed == 0, f"{failed} of {tests} cocotb tests failed; see {results}"


# --- golden model ----------------------------------------------------------------------

def test_golden_write_then_read_returns_the_data_in_address_order():
    rng = random.Random(1)
    memory = np.zeros(3 * PAGE, dtype=np.uint8)
    command = encode_command(base=PAGE - 16, stride=48, row_bytes=24, rows=3)
    beats = [rng.getrandbits(64) for _ in range(9)]
    out = golden(memory, [("write", command, beats), ("read", command)], data_bits=64)
    assert out["reads"] == [[(b, i == 8) for i, b in enumerate(beats)]]
    assert out["wrdone"] == [0] and out["rd_bytes"] == out["wr_bytes"] == 72
    # Little-endian: the first beat's low byte lands at the base address.
    assert out["memory"][PAGE - 16] == beats[0] & 0xFF
    assert out["memory"][PAGE - 16 + 24:PAGE - 16 + 48].sum() == 0  # the gap is untouched
    assert not out["error"]


def test_golden_rejects_misaligned_and_empty_commands():
    memory = np.zeros(PAGE, dtype=np.uint8)
    for command in (encode_command(base=4, stride=8, row_bytes=8, rows=1),
                    encode_command(base=0, stride=12, row_bytes=8, rows=2),
                    encode_command(base=0, stride=8, row_bytes=0, rows=2),
                    encode_command(base=0, stride=8, row_bytes=8, rows=1) | 1 << 127):
        out = golden(memory, [("read", command)], data_bits=64)
        assert out["reads"] == [] and out["error"]
        assert not command_valid(command, data_bits=64)


@pytest.mark.parametrize("data_bits,max_burst", [(32, 1), (64, 16), (128, 256), (64, 200)])
def test_bursts_cover_each_row_and_never_cross_4k(data_bits, max_burst):
    rng = random.Random(data_bits + max_burst)
    lanes = data_bits // 8
    for _ in range(200):
        row = lanes * rng.randint(1, 700)
        command = encode_command(base=lanes * rng.randrange(1 << 20), row_bytes=row,
                                 stride=row + lanes * rng.randint(0, 9), rows=rng.randint(1, 4))
        split = bursts(command, data_bits=data_bits, max_burst=max_burst)
        covered = [a + i * lanes for a, n in split for i in range(n)]
        assert covered == tile_beat_addresses(command, data_bits=data_bits)
        assert all(1 <= n <= max_burst and a % PAGE + n * lanes <= PAGE for a, n in split)


# --- MyHDL model and its Verilog (MyHDL co-simulation) against the golden model -------

def test_writes_and_reads_a_tile_across_4k_like_the_golden_model(hdl, tmp_path):
    bench = simkit  # its fixed-latency AXI memory model and tile runner
    rng = random.Random(5)
    config = {"data_bits": 64, "addr_bits": 32, "max_burst": 4}
    tile = {"base": PAGE - 48, "stride": 96, "row_bytes": 64, "rows": 3}
    command = encode_command(**tile)
    memory = bytearray(rng.getrandbits(8) for _ in range(3 * PAGE))
    data = [rng.getrandbits(64) for _ in range(24)]
    want = golden(np.frombuffer(memory, dtype=np.uint8),
                  [("write", command, data), ("read", command)], data_bits=64)

    wrote = bench.run_tile(outstanding=2, latency=3, direction="write", memory=memory,
                           data=data, config=config, hdl=hdl, workdir=tmp_path / "w", **tile)
    assert bytes(wrote["memory"]) == want["memory"].tobytes()
    assert wrote["wrdone"] == 0 and wrote["wr_bytes"] == want["wr_bytes"]
    read = bench.run_tile(outstanding=2, latency=3, direction="read", memory=wrote["memory"],
                          config=config, hdl=hdl, workdir=tmp_path / "r", **tile)
    assert read["beats"] == want["reads"][0]
    assert read["rd_bytes"] == want["rd_bytes"] and not read["error"]


# Read tiles (bus, max_burst, outstanding, memory latency, tile) chosen for what the model
# must get right: short last bursts, rows cut at 4 KB, strides beyond the row, one-beat
# bursts, more outstanding bursts than a row has
TIMING = [(32, 1, 1, 20, dict(base=0x0FC0, stride=64, row_bytes=64, rows=2)),
          (64, 2, 4, 20, dict(base=0x2000, stride=200 * 8, row_bytes=136, rows=3)),
          (128, 16, 4, 20, dict(base=0x0F80, stride=1024, row_bytes=1024, rows=1)),
          (64, 16, 1, 8, dict(base=0x1000 - 40, stride=400, row_bytes=320, rows=2)),
          (32, 64, 2, 20, dict(base=0x3000, stride=2048, row_bytes=1500 // 4 * 4, rows=1)),
          (64, 4, 8, 2, dict(base=0x0FF8, stride=72, row_bytes=72, rows=4)),
          (128, 5, 3, 13, dict(base=0x0E00, stride=1600, row_bytes=1040, rows=2)),
          (32, 16, 2, 20, dict(base=0x4000, stride=4, row_bytes=4, rows=7))]


@pytest.mark.parametrize("data_bits,max_burst,outstanding,latency,tile", TIMING)
def test_read_timing_model_is_the_rtl_cycle_for_cycle(data_bits, max_burst, outstanding,
                                                       latency, tile):
    """``read_cycles`` (what conv_frame plans its fetches with) against the MyHDL block
    and a fixed-latency memory: command handshake to the last beat, equal."""
    run = simkit.run_tile(outstanding=outstanding, latency=latency, direction="read",
                          config={"data_bits": data_bits, "addr_bits": 32,
                                  "max_burst": max_burst}, **tile)
    assert run["cycles"] == read_cycles(encode_command(**tile), data_bits=data_bits,
                                        max_burst=max_burst, outstanding=outstanding,
                                        latency=latency)


class PlainTimeline(ReadTimeline):
    """Every burst placed one by one: no idle-engine cache, no repeated runs."""

    def command(self, lengths, at):
        return self._run(lengths, at)

    def _repeat(self, lengths, n):
        return 0


def test_read_timeline_shortcuts_place_every_burst_as_one_by_one():
    rng = random.Random(3)
    for _ in range(400):
        config = dict(outstanding=rng.choice([1, 2, 3, 4, 8]),
                      max_burst=rng.choice([1, 2, 3, 16, 64]), latency=rng.choice([0, 2, 20]))
        fast, plain = ReadTimeline(**config), PlainTimeline(**config)
        at = 0
        for _ in range(rng.randint(1, 5)):
            lengths = [config["max_burst"]] * rng.randint(1, 60)
            lengths[-1] = rng.randint(1, config["max_burst"])
            at += rng.randint(0, 150)
            assert fast.command(lengths, at) == plain.command(lengths, at), config
            tail = config["outstanding"] + 3
            assert fast.bursts[-tail:] == plain.bursts[-tail:]


# --- conversion, lint, CLI, parameters ---------------------------------------------------

@pytest.mark.parametrize("params", [{"data_bits": 64, "max_burst": 16, "outstanding": 4},
                                    {"data_bits": 128, "max_burst": 256, "outstanding": 3},
                                    {"data_bits": 32, "max_burst": 1, "outstanding": 1},
                                    {"data_bits": 128, "max_burst": 64, "outstanding": 4,
                                     "target": "ecp5-85f"}])
def test_lint_clean(tmp_path, params):
    generate(BLOCK, tmp_path, **params)
    lint(tmp_path / "tile_dma.v", "tile_dma", BLOCK.lint_waivers)


def test_cli_writes_verilog_and_sidecar(tmp_path):
    argv = ["block", "tile_dma", "--data-bits", "64", "--max-burst", "16", "--outstanding", "4"]
    assert main([*argv, "-o", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "tile_dma.json").read_text())
    ports = {p["name"]: (p["direction"], p["width"]) for p in info["ports"]}
    assert ports["m_axi_araddr"] == ("output", 32) and ports["m_axi_rdata"] == ("input", 64)
    assert ports["s_axis_rdcmd_tdata"] == ("input", 128)
    assert ports["rd_bytes"] == ("output", 64) and ports["error"] == ("output", 1)
    assert info["estimate"]["bram_bits"] == 4 * 16 * 65 + 4 * 8  # read FIFO + burst lengths


@pytest.mark.parametrize("flag,value,message", [
    ("--data-bits", "48", "--data-bits: must be one of 32, 64, 128, got 48"),
    ("--max-burst", "257", "--max-burst: must be an integer in 1..256, got 257"),
    ("--outstanding", "0", "--outstanding: must be an integer in 1..8, got 0"),
    ("--addr-bits", "64", "--addr-bits: must be one of 32, got 64"),
])
def test_cli_rejects_bad_parameters(tmp_path, capsys, flag, value, message):
    out = tmp_path / "out"
    assert main(["block", "tile_dma", flag, value, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_block_validates_its_parameters():
    with pytest.raises(ParameterError, match=r"^max_burst: "):
        BLOCK.build(**BLOCK.ports(), max_burst=0)
