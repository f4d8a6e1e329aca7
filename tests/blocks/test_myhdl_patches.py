"""blocks.myhdl_patches: the Verilog of a design is byte-identical with MyHDL's own lookups
and with the memoised ones, and across string-hash seeds; the frame records MyHDL reads are
the real ones."""
import inspect
import subprocess
import sys
import textwrap

import myhdl._block
from myhdl import Signal, always_comb, block, intbv

import blocks  # noqa: F401  (importing blocks installs blocks.myhdl_patches)

# A sparse masked decoder: many instances of the same generators, nested blocks, a ROM file.
CHILD = textwrap.dedent("""
    import inspect, sys
    import numpy as np
    import myhdl._util
    from blocks import myhdl_patches
    from blocks.spec import registry
    from cnn_ip.export import write_verilog
    if sys.argv[2] == "myhdl":       # MyHDL's own lookups back in place
        for module in myhdl_patches.PATCHED:
            module.inspect = inspect
        myhdl._util._dedent = myhdl._util._dedent.__wrapped__
    rng = np.random.default_rng(5)
    weights = rng.choice([-1, 0, 1], size=(8, 24), p=[0.2, 0.6, 0.2])
    block_def = registry()["sparse_decoder"]
    _, args = block_def.prepared(lanes=2, simd=4, weights="ternary", weights_file=weights)
    print(write_verilog(block_def, sys.argv[1], args).read_text())
""")


def convert(tmp_path, lookups, seed=0):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / f"{lookups}{seed}"),
                           lookups], capture_output=True, text=True,
                          env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
                          check=True)
    return done.stdout


def test_verilog_byte_identical_with_and_without_speedups(tmp_path):
    fast, slow = convert(tmp_path, "fast"), convert(tmp_path, "myhdl")
    assert "module sparse_decoder" in fast and len(fast.splitlines()) > 500
    assert fast == slow


def test_verilog_byte_identical_across_hash_seeds(tmp_path):
    first = convert(tmp_path, "fast", seed=1)
    assert "always @(" in first
    assert convert(tmp_path, "fast", seed=2) == first == convert(tmp_path, "fast", seed=3)


def test_frame_records_match_inspect():
    fast = myhdl._block.inspect
    assert fast is not inspect and fast.isfunction is inspect.isfunction

    def caller():
        return fast.stack(), inspect.stack()
    mine, real = caller()
    assert len(mine) == len(real)
    assert [(r[0], r[1], r[2], r[3]) for r in mine] == [(r[0], r[1], r[2], r[3]) for r in real]
    frame = sys._getframe()
    assert [r[0] for r in fast.getouterframes(frame)] == [r[0] for r in inspect.getouterframes(frame)]


def test_source_lookups_memoised_per_code_object():
    fast = myhdl._block.inspect

    def make(k):
        def gen():
            return k
        return gen
    first, second = make(1), make(2)
    assert fast.getsource(first) == inspect.getsource(second)
    assert fast.getsource(first) is fast.getsource(second)      # one lookup for both
    assert fast.getsourcelines(first) == inspect.getsourcelines(first)


@block
def nested(a, b, total, below):
    @always_comb
    def add():
        total.next = (a << 3) + b        # an expression, then an unsigned operand

    @always_comb
    def less():
        below.next = (a + 1) < b
    return add, less


def test_unsigned_operand_after_a_nested_expression_is_cast_signed(tmp_path):
    """Without the cast Verilog evaluates ``(a << 3) + b`` unsigned and zero-extends ``a``
    (requant's two-multiplier join); Icarus must give MyHDL's values for every ``a``."""
    a, b = Signal(intbv(0, min=-8, max=8)), Signal(intbv(0)[4:])
    total, below = Signal(intbv(0, min=-1 << 9, max=1 << 9)), Signal(bool(0))
    nested(a, b, total, below).convert(hdl="Verilog", path=str(tmp_path), name="nested",
                                       testbench=False)
    text = (tmp_path / "nested.v").read_text()
    assert "(a << 3) + $signed({1'b0, b})" in text and "< $signed({1'b0, b})" in text
    (tmp_path / "tb.v").write_text(textwrap.dedent("""
        module tb;
        reg signed [3:0] a; reg [3:0] b; wire signed [9:0] total; wire below;
        integer i, j;
        nested dut(.a(a), .b(b), .total(total), .below(below));
        initial begin
            for (i = -8; i < 8; i = i + 1)
                for (j = 0; j < 16; j = j + 5) begin
                    a = i; b = j; #1 $display("%0d %0d %0d %0d", i, j, total, below);
                end
        end
        endmodule
    """))
    subprocess.run(["iverilog", "-o", "sim", "tb.v", "nested.v"], cwd=tmp_path, check=True)
    lines = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    rows = [tuple(int(v) for v in line.split()) for line in lines if line.strip()]
    assert len(rows) == 16 * 4
    assert rows == [(i, j, i * 8 + j, int(i + 1 < j)) for i, j, _, _ in rows]
