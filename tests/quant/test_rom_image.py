import pytest

from quant.rom_image import model_bits, read_rom, write_rom


def test_round_trip_and_exact_bits(tmp_path):
    words = [0, 1, 0x1ff, 0x100]
    info = write_rom(tmp_path, "w", words, 9, format="test", lanes=2)
    assert (tmp_path / "w.hex").read_text() == "000\n001\n1ff\n100\n"
    back, meta = read_rom(tmp_path / "w.json")
    assert back == words and meta == info and info["bits"] == 36 and meta["lanes"] == 2
    write_rom(tmp_path, "b", [5], 3, format="test")
    assert model_bits(tmp_path) == 36 + 3


def test_word_too_wide_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="word 1 = 8 does not fit in 3 bits"):
        write_rom(tmp_path, "w", [1, 8], 3, format="test")
    assert list(tmp_path.iterdir()) == []
