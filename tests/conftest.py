"""Shared test fixtures.

``hdl`` runs a test twice: on the MyHDL model and on its converted Verilog under Icarus.
"""
import pytest


@pytest.fixture(params=["myhdl", "icarus"])
def hdl(request):
    return request.param
