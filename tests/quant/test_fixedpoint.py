import numpy as np
import pytest

from quant.fixedpoint import requant_constants, signed_bits, twos_complement, unsigned_bits


def test_multiplier_uses_all_bits_and_rounds_to_nearest():
    ratio = np.array([0.0123, 0.0031, 0.0])
    m, s = requant_constants(ratio, 8)
    assert m.max() < 2 ** 8 and m.max() >= 2 ** 7          # largest shift that fits
    assert np.all(np.abs(m - ratio * 2 ** s) <= 0.5)
    m_neg, s2 = requant_constants(ratio / 8, 8, s)
    assert s2 == s and np.all(np.abs(m_neg - ratio / 8 * 2 ** s) <= 0.5)


def test_bad_ratios():
    with pytest.raises(ValueError, match="ratio"):
        requant_constants([-1.0], 8)
    with pytest.raises(ValueError, match="integer bits"):
        requant_constants([1000.0], 8)


def test_widths():
    assert signed_bits([-128, 127]) == 8 and signed_bits([-129]) == 9 and signed_bits([0]) == 2
    assert unsigned_bits([255]) == 8 and unsigned_bits([0]) == 1
    assert list(twos_complement([-1, 2, -4], 3)) == [7, 2, 4]
