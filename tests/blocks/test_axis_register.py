import random

import pytest

from blocks.axis_register import BLOCK
from blocks.spec import ParameterError
from cnn_ip.cosim import lint, run_streams
from cnn_ip.export import generate


@pytest.mark.parametrize("bits,idle,stall", [(1, 0.0, 0.0), (8, 0.3, 0.5), (37, 0.6, 0.2)])
def test_passes_every_beat_in_order_under_stalls(hdl, tmp_path, bits, idle, stall):
    rng = random.Random(bits)
    beats = [(rng.getrandbits(bits), rng.random() < 0.2) for _ in range(150)]
    beats[:2] = [((1 << bits) - 1, True), (0, False)]  # extreme values
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": len(beats)}, idle=idle, stall=stall, seed=bits,
                      params={"bits": bits})
    assert [(b.data, b.last) for b in out["m_axis_out"]] == BLOCK.golden(beats)


def test_sustains_one_beat_per_cycle(hdl, tmp_path):
    beats = [(i, False) for i in range(100)]
    out = run_streams(BLOCK, hdl=hdl, workdir=tmp_path, inputs={"s_axis_in": beats},
                      expect={"m_axis_out": 100}, params={"bits": 8})
    cycles = [b.cycle for b in out["m_axis_out"]]
    assert cycles[-1] - cycles[0] == 99


def test_lint_clean(tmp_path):
    generate(BLOCK, tmp_path, bits=16)
    assert lint(tmp_path / "axis_register.v", "axis_register") == []  # no waiver needed


def test_rejects_bad_width():
    with pytest.raises(ParameterError, match=r"^bits: must be an integer in 1\.\.4096"):
        BLOCK.validate(bits=0)
