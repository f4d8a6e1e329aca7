"""cnn_ip: the tool flow that turns blocks and plans into verified Verilog.

Modules: ``cli`` (the ``cnn-ip`` command), ``export`` (Verilog + JSON sidecar),
``cosim`` (MyHDL/Icarus co-simulation harness and Verilator lint).
"""
