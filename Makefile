# Two-command set-up: `make demo` and `make test`. Both run `make setup` first, which is
# idempotent: Debian tools are installed only when missing, the venv only when setup.cfg or constraints.txt changed.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
TOOLS    := iverilog verilator yosys nextpnr-ice40
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JOBS     ?= 2

.PHONY: setup tools test demo clean

setup: tools $(STAMP)

tools:
	@missing=""; for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian tools:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): setup.cfg pyproject.toml constraints.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup --durations=15 tests

# The whole flow on the digits CNN: every block's Verilog and cost; the network trained,
# quantized to mixed precision (sparsity searched), assembled for ecp5-85f and simulated in
# RTL on all 360 test images (fp32, integer and RTL accuracy side by side).
demo: setup
	$(VENV)/bin/cnn-ip demo -o out/demo
	$(VENV)/bin/cnn-ip quantize examples/digits.yaml -o out/digits
	$(VENV)/bin/cnn-ip assemble examples/digits.yaml --model out/digits -o out/digits_hw
	$(VENV)/bin/cnn-ip simulate out/digits_hw

clean:
	rm -rf out build sim_build .pytest_cache
