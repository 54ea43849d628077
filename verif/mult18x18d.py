"""A behavioural Verilog model of the ECP5 ``MULT18X18D`` for Icarus, so the ``"ecp5"``
multiplier variants (what ``hasp synth`` builds for ECP5) can be simulated against the
``"generic"`` ones (what every other test runs)."""
import subprocess
from pathlib import Path

__all__ = ["write_mult18x18d_model", "compare_multipliers"]

# MULT18X18D in the one mode the "ecp5" multipliers use, from the ECP5 sysDSP documentation:
# optional A/B input registers and output register on CLK0 (CE0, synchronous RST0), signed
# operands when SIGNEDA/SIGNEDB are high. Anything else drives X, so a wrongly configured
# instance fails.
_MULT18X18D_MODEL = """
module MULT18X18D(%(ports)s);
  %(decls)s
  parameter REG_INPUTA_CLK = "NONE"; parameter REG_INPUTA_CE = "CE0"; parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE"; parameter REG_INPUTB_CE = "CE0"; parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE"; parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE"; parameter REG_OUTPUT_CE = "CE0"; parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED"; parameter RESETMODE = "SYNC"; parameter MULT_BYPASS = "DISABLED";
  parameter CAS_MATCH_REG = "FALSE"; parameter SOURCEB_MODE = "B_SHIFT";
  wire [17:0] a = {%(a)s};
  wire [17:0] b = {%(b)s};
  reg [17:0] ar = 0, br = 0;
  reg [35:0] pr = 0;
  always @(posedge CLK0) if (CE0) begin
    ar <= RST0 ? 18'd0 : a;
    br <= RST0 ? 18'd0 : b;
  end
  wire [17:0] ai = REG_INPUTA_CLK == "CLK0" ? ar : a;
  wire [17:0] bi = REG_INPUTB_CLK == "CLK0" ? br : b;
  wire ok = SOURCEA == 0 && SOURCEB == 0 && SIGNEDA == SIGNEDB && REG_PIPELINE_CLK == "NONE"
            && MULT_BYPASS == "DISABLED" && (REG_INPUTA_CLK == "NONE" || REG_INPUTA_CLK == "CLK0")
            && (REG_INPUTB_CLK == "NONE" || REG_INPUTB_CLK == "CLK0")
            && (REG_OUTPUT_CLK == "NONE" || REG_OUTPUT_CLK == "CLK0")
            && REG_INPUTA_CE == "CE0" && REG_INPUTB_CE == "CE0" && REG_OUTPUT_CE == "CE0"
            && SOURCEB_MODE == "B_SHIFT";
  // the products are separate wires: inside one ?: the unsigned arm would make the signed
  // product unsigned (wrong in the upper half for negative operands)
  wire signed [35:0] sprod = $signed(ai) * $signed(bi);
  wire [35:0] uprod = ai * bi;
  wire [35:0] prod = !ok ? 36'bx : SIGNEDA ? sprod : uprod;
  always @(posedge CLK0) if (CE0) pr <= RST0 ? 36'd0 : prod;
  wire [35:0] p = REG_OUTPUT_CLK == "CLK0" ? pr : prod;
  assign {%(p)s} = p;
endmodule
"""


def write_mult18x18d_model(path) -> Path:
    """Write the model (module ``MULT18X18D``, one scalar port per bit, as Yosys' cell
    library declares it) to ``path``."""
    names = ([f"A{k}" for k in range(18)] + [f"B{k}" for k in range(18)]
             + [f"C{k}" for k in range(18)]
             + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0"])
    outs = [f"P{k}" for k in range(36)]
    path = Path(path)
    path.write_text(_MULT18X18D_MODEL % {
        "ports": ", ".join(names + outs),
        "decls": "input " + ", ".join(names) + "; output " + ", ".join(outs) + ";",
        "a": ", ".join(f"A{k}" for k in reversed(range(18))),
        "b": ", ".join(f"B{k}" for k in reversed(range(18))),
        "p": ", ".join(f"P{k}" for k in reversed(range(36)))})
    return path


def compare_multipliers(tmp_path, make, name: str, tb: str) -> tuple[dict, str]:
    """Simulate ``make("generic")`` as module ``{name}_generic`` and ``make("ecp5")`` as
    ``{name}_ecp5`` side by side in Icarus under the testbench ``tb`` (module ``tb``), with
    the MULT18X18D model. The testbench prints one line ``RESULT key=N key=N ...``; returns
    its fields as ints and the line itself."""
    from amaranth.back import verilog
    tmp_path = Path(tmp_path)
    files = ["tb.v", "mult18x18d.v"]
    for mult in ("generic", "ecp5"):
        v = verilog.convert(make(mult), name=f"{name}_{mult}", emit_src=False)
        if mult == "ecp5" and "MULT18X18D" not in v:
            raise AssertionError(f"{name}: the ecp5 variant has no MULT18X18D instance")
        (tmp_path / f"{name}_{mult}.v").write_text(v)
        files.append(f"{name}_{mult}.v")
    write_mult18x18d_model(tmp_path / "mult18x18d.v")
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "-s", "tb"] + files, cwd=tmp_path,
                   check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    return {k: int(v) for k, v in (x.split("=") for x in line.split()[1:])}, line
