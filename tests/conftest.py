"""Shared test fixtures.

``hdl`` runs a test twice: on the MyHDL model and on its converted Verilog under Icarus.
``cli_rejects`` checks how ``cnn-ip block`` turns down a bad flag.
Tests marked ``first`` (minutes each) are collected first.
"""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "first: a test of minutes, scheduled before the others")


def pytest_collection_modifyitems(config, items):
    # The suite's few long tests (whole networks in RTL) start first, so that the
    # parallel workers run the many short ones beside them instead of after them.
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


@pytest.fixture(params=["myhdl", "icarus"])
def hdl(request):
    return request.param


@pytest.fixture
def cli_rejects(tmp_path, capsys):
    """``check(block, defaults, flags, message)``: ``cnn-ip block BLOCK`` with the
    ``defaults`` flags, overridden by ``flags`` (flag, value, ...), exits 2 with one line
    holding ``message`` and writes nothing."""
    from cnn_ip.cli import main

    def check(block, defaults, flags, message):
        values = {**defaults, **dict(zip(flags[::2], flags[1::2]))}
        out = tmp_path / "out"
        assert main(["block", block, *[x for kv in values.items() for x in kv],
                     "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert not out.exists()

    return check
