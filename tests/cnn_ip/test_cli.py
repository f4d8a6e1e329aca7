import json
import subprocess
import sys

import pytest

from cnn_ip.cli import main


def test_block_writes_verilog_and_sidecar_with_parsed_ports(tmp_path):
    assert main(["block", "axis_register", "--bits", "12", "-o", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "axis_register.json").read_text())
    assert info["top"] == "axis_register"
    ports = {p["name"]: (p["direction"], p["width"]) for p in info["ports"]}
    assert ports["s_axis_in_tdata"] == ("input", 12)
    assert ports["m_axis_out_tdata"] == ("output", 12)
    assert ports["s_axis_in_tready"] == ("output", 1)
    assert "module axis_register" in (tmp_path / "axis_register.v").read_text()


def test_output_is_deterministic(tmp_path):
    for d in ("a", "b"):
        main(["block", "axis_register", "--bits", "5", "-o", str(tmp_path / d)])
    assert (tmp_path / "a/axis_register.v").read_bytes() == (tmp_path / "b/axis_register.v").read_bytes()


@pytest.mark.parametrize("argv,message", [
    (["block", "axis_register", "--bits", "0"], "--bits: must be an integer in 1..4096, got 0"),
    (["block", "axis_register", "--bits", "x"], "argument --bits: invalid int value"),
    (["block", "nope"], "invalid choice: 'nope'"),
])
def test_bad_parameters_give_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_an_output_path_through_a_file_is_one_line(tmp_path, capsys):
    """Was a FileExistsError traceback after the whole conversion."""
    (tmp_path / "f").write_text("kept")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        assert main(["block", "axis_register", "--bits", "5", "-o", str(out)]) == 2
        assert capsys.readouterr().err == (f"cnn-ip: block axis_register: -o {out}: "
                                           f"{tmp_path / 'f'} exists and is not a directory\n")
    assert (tmp_path / "f").read_text() == "kept"


def test_a_failed_conversion_leaves_no_new_directories(tmp_path, monkeypatch):
    """The directories ``-o`` needed are made for the scratch files and removed again."""
    import cnn_ip.export

    def broken(*args, **kwargs):
        raise RuntimeError("conversion failed")
    monkeypatch.setattr(cnn_ip.export, "write_verilog", broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        main(["block", "axis_register", "--bits", "5", "-o", str(tmp_path / "new/deeper/out")])
    assert list(tmp_path.iterdir()) == []


def test_console_script_exit_status(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cnn_ip.cli", "block", "axis_register",
                             "--bits", "-3", "-o", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_demo_generates_every_block(tmp_path):
    # A subprocess, as a user runs it (MyHDL's elaboration inspects the whole call stack,
    # which under pytest is deep and makes the large demo blocks several times slower).
    from cnn_ip.block_cmd import all_blocks
    result = subprocess.run([sys.executable, "-m", "cnn_ip.cli", "demo", "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in all_blocks():
        for suffix in (".v", ".vlt", ".json"):
            assert (tmp_path / name / f"{name}{suffix}").exists()
        # lint-clean as delivered: the user's command in the block's directory
        others = sorted(p.name for p in (tmp_path / name).glob("*.v") if p.name != f"{name}.v")
        lint = subprocess.run(["verilator", "--lint-only", "-Wall", f"{name}.vlt", f"{name}.v",
                               *others], cwd=tmp_path / name, capture_output=True, text=True)
        assert lint.returncode == 0 and "%" not in lint.stdout + lint.stderr, \
            f"{name}: {lint.stdout + lint.stderr}"
        assert name in result.stdout


def one_line(capsys, argv, message):
    """``cnn-ip argv`` fails as bad input: exit 2, ``message`` in its one line on stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_demo_checks_every_output_directory_before_converting(tmp_path, capsys, monkeypatch):
    """Were FileExistsError/NotADirectoryError tracebacks; ``-o ''`` wrote into the
    working directory."""
    import cnn_ip.demo_cmd

    def converting(*args, **kwargs):
        raise AssertionError("converted before the output paths were checked")
    monkeypatch.setattr(cnn_ip.demo_cmd, "generate", converting)
    (tmp_path / "f").write_text("kept")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "axis_fifo").write_text("kept")
    before = sorted(tmp_path.rglob("*"))
    for out, message in ((tmp_path / "f", f"{tmp_path / 'f'} exists and is not a directory"),
                         (tmp_path / "f" / "sub", f"{tmp_path / 'f'} exists and is not a directory"),
                         (tmp_path / "d", f"{tmp_path / 'd' / 'axis_fifo'} exists and is not a "
                                          "directory"),
                         ("", "-o : must name a directory, got ''")):
        one_line(capsys, ["demo", "-o", str(out)], f"cnn-ip: demo: -o {out}: {message}"
                 if out else message)
    assert sorted(tmp_path.rglob("*")) == before
    assert (tmp_path / "f").read_text() == (tmp_path / "d" / "axis_fifo").read_text() == "kept"


def test_demo_that_cannot_write_is_one_line(tmp_path, capsys, monkeypatch):
    """Was a FileNotFoundError traceback (e.g. -o /proc/x)."""
    import cnn_ip.demo_cmd

    def unwritable(block_def, out, **values):
        raise PermissionError(13, "Permission denied", str(out))
    monkeypatch.setattr(cnn_ip.demo_cmd, "generate", unwritable)
    one_line(capsys, ["demo", "-o", str(tmp_path / "out")],
             f"cnn-ip: demo: -o {tmp_path / 'out'}: cannot write {tmp_path / 'out'}/")
    assert list(tmp_path.iterdir()) == []


def test_block_output_must_name_a_directory(tmp_path, capsys, monkeypatch):
    """``-o ''`` wrote the block into the working directory."""
    monkeypatch.chdir(tmp_path)
    one_line(capsys, ["block", "axis_register", "--bits", "4", "-o", ""],
             "cnn-ip: block axis_register: -o : must name a directory, got ''")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def block_dir(tmp_path):
    """A directory as `cnn-ip block` writes it (the sidecar alone matters to these tests)."""
    directory = tmp_path / "b"
    directory.mkdir()
    (directory / "axis_register.v").write_text("module axis_register(); endmodule\n")
    (directory / "axis_register.json").write_text(json.dumps({"top": "axis_register"}))
    return directory


def test_synth_sidecar_naming_no_file_is_one_line(block_dir, capsys, monkeypatch):
    """A sidecar whose verilog is no string was a TypeError traceback."""
    import cnn_ip.synth_cmd

    def synthesizing(*args, **kwargs):
        raise AssertionError("synthesized")
    monkeypatch.setattr(cnn_ip.synth_cmd, "synthesize", synthesizing)
    sidecar = block_dir / "axis_register.json"
    for name in (5, ""):
        sidecar.write_text(json.dumps({"top": "axis_register", "verilog": name}))
        one_line(capsys, ["synth", str(block_dir), "--target", "ecp5-85f"],
                 f"cnn-ip: synth: {sidecar}: verilog: must name a file, got {name!r}")
    assert sorted(p.name for p in block_dir.iterdir()) == ["axis_register.json",
                                                           "axis_register.v"]


def test_synth_report_that_cannot_be_written_is_one_line(block_dir, capsys, monkeypatch):
    """Was an IsADirectoryError traceback after the synthesis."""
    import cnn_ip.synth_cmd
    monkeypatch.setattr(cnn_ip.synth_cmd, "synthesize", lambda *args, **kwargs: {})
    (block_dir / "synth_report.json").mkdir()
    one_line(capsys, ["synth", str(block_dir), "--target", "ecp5-85f"],
             f"cnn-ip: synth: {block_dir}: cannot write synth_report.json: Is a directory")
