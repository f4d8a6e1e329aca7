"""The harness itself: it must catch what it is there to catch."""
import subprocess

import pytest
from myhdl import always_seq, block, instance

from blocks.axis_register import BLOCK
from blocks.spec import BlockDef, Param
from blocks.stream import Axis, clock_reset, pack, unpack
from cnn_ip import cosim, export


def test_vpi_is_cached_outside_the_repo():
    path = cosim.myhdl_vpi()
    assert path.exists() and "cnn_ip" in str(path)
    assert cosim.myhdl_vpi() == path


def test_missing_tool_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(cosim.ToolMissing, match="iverilog not found"):
        cosim.require("iverilog")


def test_timeout_reports_counts():
    with pytest.raises(AssertionError, match="timeout after 50 cycles"):
        cosim.run_streams(BLOCK, inputs={"s_axis_in": [(1, True)]},
                          expect={"m_axis_out": 2}, max_cycles=50,
                          params={"bits": 4})


@block
def withdrawing(aclk, aresetn, s_axis_in, m_axis_out, *, bits):
    """A faulty block: raises tvalid, then drops it before the beat moved."""
    @always_seq(aclk.posedge, reset=aresetn)
    def logic():
        m_axis_out.tvalid.next = not m_axis_out.tvalid
        m_axis_out.tdata.next = m_axis_out.tdata + 1
    return logic


BROKEN = BlockDef(name="withdrawing", build=withdrawing, params=(Param("bits", int, lo=1, hi=8),),
                  ports=lambda bits: {**clock_reset(), "s_axis_in": Axis(bits),
                                      "m_axis_out": Axis(bits)},
                  golden=None, estimate=lambda bits: {})


def test_monitor_catches_withdrawn_valid():
    with pytest.raises(AssertionError, match="AXI stability violated"):
        cosim.run_streams(BROKEN, inputs={}, expect={"m_axis_out": 5}, stall=0.7,
                          params={"bits": 8})


@block
def unset_data(aclk, aresetn, s_axis_in, m_axis_out, *, bits):
    """A faulty block: valid beats whose tdata register nothing ever writes (X in Verilog,
    MyHDL's initial 0 in MyHDL), and an input it never takes."""
    @always_seq(aclk.posedge, reset=aresetn)
    def valid():
        m_axis_out.tvalid.next = 1
        m_axis_out.tlast.next = 0

    @always_seq(aclk.posedge, reset=None)
    def never():
        if s_axis_in.tvalid and not s_axis_in.tvalid:
            m_axis_out.tdata.next = 1
            s_axis_in.tready.next = 1
    return valid, never


UNSET = BlockDef(name="unset_data", build=unset_data, params=(Param("bits", int, lo=1, hi=8),),
                 ports=lambda bits: {**clock_reset(), "s_axis_in": Axis(bits),
                                     "m_axis_out": Axis(bits)},
                 golden=None, estimate=lambda bits: {})


def test_an_x_on_an_output_is_caught_not_read_as_zero(tmp_path):
    # MyHDL itself sees zeros: only the Verilog's X tells the two apart
    out = cosim.run_streams(UNSET, inputs={}, expect={"m_axis_out": 3}, params={"bits": 4})
    assert len(out["m_axis_out"]) >= 3 and all(b.data == 0 for b in out["m_axis_out"])
    with pytest.raises(AssertionError, match=r"X or Z on an output.*m_axis_out_tdata xxxx"):
        cosim.run_streams(UNSET, inputs={}, expect={"m_axis_out": 3}, params={"bits": 4},
                          hdl="icarus", workdir=tmp_path)
    assert any("s_axis_in_tready" in line for line in cosim.x_outputs(tmp_path))


def test_lint_fails_on_truncation_and_unused_signals(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [1:0] a, input b, output y);\nassign y = a;\nendmodule\n")
    with pytest.raises(AssertionError, match="WIDTH") as error:
        cosim.lint(bad, "bad")
    assert "UNUSED" in str(error.value)
    with pytest.raises(export.LintError, match="not waivable") as error:
        export.write_lint_config(tmp_path, "bad")
    assert "bad.v:2: Operator ASSIGNW expects 1 bits" in str(error.value)
    assert "Signal is not used: 'b'" in str(error.value)
    assert not (tmp_path / "bad.vlt").exists()


def test_lint_waives_only_width_expansion_line_by_line(tmp_path):
    ok = tmp_path / "ok.v"
    ok.write_text("module ok(input a, input c, output [1:0] y, output [1:0] z);\n"
                  "assign y = a;\nassign z = {c, c};\nendmodule\n")
    with pytest.raises(AssertionError, match="expects 2 bits"):
        cosim.lint(ok, "ok")  # no .vlt yet
    waivers = export.write_lint_config(tmp_path, "ok")
    assert [(w["file"], w["line"], w["rule"]) for w in waivers] == [("ok.v", 2, "WIDTH")]
    assert "VARREF 'a' (1 bits) is extended to 2 bits" in waivers[0]["reason"]
    assert cosim.lint(ok, "ok") == ['lint_off -rule WIDTH -file "*ok.v" -lines 2']
    # exactly the user's command, in the directory
    result = subprocess.run(["verilator", "--lint-only", "-Wall", "ok.vlt", "ok.v"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "%" not in result.stdout + result.stderr
    # the waiver is for that line only: the same widening one line down still fails
    ok.write_text("module ok(input a, input c, output [1:0] y, output [1:0] z);\n"
                  "assign z = {c, c};\nassign y = a;\nendmodule\n")
    with pytest.raises(AssertionError, match="ok.v:3"):
        cosim.lint(ok, "ok")


def test_lint_waives_an_operand_extended_to_either_width_of_its_operator(tmp_path):
    """Verilator names two widths for an operand whose operator's other operand and result
    differ ("expects 32 or 13 bits"): a narrower operand fits both, so it is an extension
    (requant's rounding adder with a shift wider than the product); a result of two widths
    assigned to a narrower one is a truncation and stays a fault."""
    (tmp_path / "add.v").write_text("module add(input signed [4:0] j, output signed [12:0] b);\n"
                                    "assign b = j + 2048;\nendmodule\n")
    waivers = export.write_lint_config(tmp_path, "add")
    assert [(w["line"], w["rule"]) for w in waivers] == [(2, "WIDTH")]
    assert "VARREF 'j' (5 bits) is extended to 32 or 13 bits" in waivers[0]["reason"]
    assert cosim.lint(tmp_path / "add.v", "add")
    (tmp_path / "cut.v").write_text("module cut(input signed [4:0] j, output signed [3:0] b);\n"
                                    "assign b = j + 7;\nendmodule\n")
    with pytest.raises(export.LintError, match="cut.v:2: Operator ASSIGNW expects 4 bits"):
        export.write_lint_config(tmp_path, "cut")


def test_lint_config_covers_a_directory_of_modules(tmp_path):
    (tmp_path / "top.v").write_text("module top(input a, output [1:0] y);\n"
                                    "leaf u(.a(a), .y(y));\nendmodule\n")
    (tmp_path / "leaf.v").write_text("module leaf(input a, output [1:0] y);\n"
                                     "assign y = a;\nendmodule\n")
    (tmp_path / "tb_top.v").write_text("this is not Verilog and is never linted\n")
    waivers = export.write_lint_config(tmp_path, "top")
    assert [(w["file"], w["line"]) for w in waivers] == [("leaf.v", 2)]
    assert export.lint_command(tmp_path, "top") == [
        "verilator", "--lint-only", "-Wall", "top.vlt", "top.v", "leaf.v"]
    assert cosim.lint(tmp_path / "top.v", "top") == [
        'lint_off -rule WIDTH -file "*leaf.v" -lines 2']


def test_pack_unpack_round_trip():
    values = [-4, 3, 0, -1]
    word = pack(values, 3)
    assert unpack(word, 3, 4, signed=True) == values
    assert unpack(word, 3, 4) == [4, 3, 0, 7]


def test_lint_waives_a_narrower_select_index_but_not_a_wider_one(tmp_path):
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    (narrow / "narrow.v").write_text("module narrow(input [11:0] v, input [2:0] i, output y);\n"
                                     "assign y = v[i];\nendmodule\n")
    waivers = export.write_lint_config(narrow, "narrow")
    assert [(w["line"], w["rule"]) for w in waivers] == [(2, "WIDTH")]
    assert "3-bit index is extended to 4 bits" in waivers[0]["reason"]
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "wide.v").write_text("module wide(input [7:0] v, input [3:0] i, output y);\n"
                                 "assign y = v[i];\nendmodule\n")
    with pytest.raises(export.LintError, match="requires 3 bit index, not 4 bits"):
        export.write_lint_config(wide, "wide")
