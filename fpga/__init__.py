"""Synthesis and place-and-route with open tools, and the device budgets they check against.

``fpga.devices``  named resource budgets (LUT, FF, DSP, block RAM) with their sources
``fpga.synth``    Yosys / nextpnr flows for Xilinx (synthesis counts), ECP5 and iCE40
``fpga.reports``  parsing of the tools' JSON outputs
"""
