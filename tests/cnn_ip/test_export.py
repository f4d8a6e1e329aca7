"""generate(): one face for every block (prepared once), the estimate convention, the sidecar."""
import json
import os
import subprocess

import numpy as np
import pytest

from blocks import sparse_decoder
from blocks.spec import ESTIMATE_KEYS
from cnn_ip.block_cmd import all_blocks
from cnn_ip.export import LONG_LINE, generate, making_parents, replacing, short_lines

BLOCKS = all_blocks()


def test_generate_reads_and_encodes_a_weights_file_once(tmp_path, monkeypatch):
    W = np.random.default_rng(3).choice([-1, 0, 1], size=(8, 16))
    path = tmp_path / "w.npy"
    np.save(path, W)
    calls = {"load": 0, "encode": 0}
    real_load, real_encode = np.load, sparse_decoder.sparse_format.encode

    def counting_load(*args, **kwargs):
        calls["load"] += 1
        return real_load(*args, **kwargs)

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(sparse_decoder.np, "load", counting_load)
    monkeypatch.setattr(sparse_decoder.sparse_format, "encode", counting_encode)
    info = generate(sparse_decoder.BLOCK, tmp_path / "out", lanes=2, simd=4,
                    weights="ternary", weights_file=str(path))
    assert calls == {"load": 1, "encode": 1}
    # memory bits: the ROM image and the masked reader's output FIFO (LUT RAM)
    assert info["estimate"]["bram_bits"] == (info["derived"]["rom_bits"]
                                             + info["derived"]["fifo_bits"])


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_estimate_follows_the_convention(name):
    block_def = BLOCKS[name]
    _, args = block_def.prepared(**block_def.example())
    est = block_def.estimate(**args)
    assert set(ESTIMATE_KEYS) <= set(est)
    for key in ("lut", "ff", "dsp", "bram_bits", "latency", "cycles"):
        assert isinstance(est[key], int) and est[key] >= 0, (key, est[key])
    assert isinstance(est["per"], str) and est["per"]
    assert set(est["bram"]) == {"xilinx", "ecp5"}
    assert set(est["bram"]["xilinx"]) == {"RAMB18", "RAMB36"}
    assert set(est["bram"]["ecp5"]) == {"DP16KD"}
    if est["bram_bits"] == 0:
        assert est["bram"] == {"xilinx": {"RAMB18": 0, "RAMB36": 0}, "ecp5": {"DP16KD": 0}}


def test_sidecar_names_the_lint_configuration_and_its_waivers(tmp_path):
    info = generate(BLOCKS["mac_array"], tmp_path, lanes=2, simd=2, weights="int", wbits=4,
                    abits=3, reduce=8)
    saved = json.loads((tmp_path / "mac_array.json").read_text())
    assert saved == info
    assert saved["lint_config"] == "mac_array.vlt"
    vlt = (tmp_path / "mac_array.vlt").read_text()
    assert vlt.startswith("`verilator_config\n")
    lines = [line for line in vlt.splitlines() if line.startswith("lint_off")]
    assert len(lines) == len(saved["lint_waivers"])
    for waiver, line in zip(saved["lint_waivers"], lines):
        assert line == (f'lint_off -rule {waiver["rule"]} -file "*{waiver["file"]}" '
                        f'-lines {waiver["line"]}')
        assert waiver["rule"] == "WIDTH" and "extended to" in waiver["reason"]
        # the reason is in the file, in the comment just above its waiver
        above = vlt.splitlines()[vlt.splitlines().index(line) - 1]
        assert above.startswith(f'// {waiver["file"]}:{waiver["line"]}: ')


def test_making_parents_removes_only_what_it_made_and_only_on_failure(tmp_path):
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError):
        with making_parents(out):
            assert out.parent.is_dir()
            out.mkdir()
            raise RuntimeError("the write failed")
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "new").exists()
    with making_parents(out):
        out.mkdir()
    assert out.is_dir()


def test_replacing_swaps_in_the_whole_directory_or_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with replacing(out) as scratch:
            (scratch / "half.txt").write_text("written before the failure")
            raise RuntimeError("the write failed")
    assert not (tmp_path / "new").exists()             # no scratch, no parents left
    umask = os.umask(0)
    os.umask(umask)
    with replacing(out) as scratch:
        (scratch / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask   # not mkdtemp's 0700
    with replacing(out) as scratch:
        (scratch / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]   # replaced, not merged
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_a_concatenation_too_long_for_verilator_is_broken_into_lines(tmp_path):
    """Verilator refuses a line of more than 40,000 tokens (a wide decoder's concatenation
    reached 230,000 characters); ``short_lines`` breaks such a line after its commas and
    leaves every other line as it was."""
    n = 12_000
    fields = ", ".join(f"a[{i % 64}]" for i in range(n))
    text = (f"module wide(input [63:0] a, output [{n - 1}:0] y);\n"
            f"// {fields[:100]}\nassign y = {{{fields}}};\nendmodule\n")
    assert len(text.splitlines()[2]) > LONG_LINE
    (tmp_path / "long.v").write_text(text.replace("module wide", "module long"))
    refused = subprocess.run(["verilator", "--lint-only", "-Wall", "long.v"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "Too many preprocessor tokens" in refused.stderr
    short = short_lines(text)
    lines = short.splitlines()
    assert lines[:2] == text.splitlines()[:2] and lines[-1] == "endmodule"
    assert max(len(line) for line in lines) < 2 * 1_000
    assert short.replace(",\n    ", ", ") == text
    directive = f"`define ALL {{{fields}}}"            # a newline would end the macro
    assert short_lines(directive) == directive
    (tmp_path / "wide.v").write_text(short)
    linted = subprocess.run(["verilator", "--lint-only", "-Wall", "wide.v"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert linted.returncode == 0 and "%" not in linted.stdout + linted.stderr
