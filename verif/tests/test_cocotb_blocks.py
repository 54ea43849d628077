"""cocotb tier: the generated Verilog of the PE array and the GEMM unit in Icarus and Verilator,
checked bit-exact against the numpy golden. One build per (block, parameters, simulator) is
shared by every test that needs it (see hasp.verif.runner)."""
import pytest

from hasp.config import preset
from hasp.verif import runner

pytestmark = pytest.mark.cocotb

PRESETS = ["tiny", "fpga"]


@pytest.mark.parametrize("preset_name", PRESETS)
def test_pe_array(simulator, preset_name):
    b = runner.build("pe_array", preset(preset_name), simulator)
    out = runner.run(b, "hasp.verif.tb.pe_array", "random_tiles",
                     args={"seeds": [11, 12, 13], "idle": 0.2, "backpressure": 0.3},
                     name=f"pe_array-{preset_name}")
    assert out["checked"] == out["tiles"] * preset(preset_name).pe.rows


@pytest.mark.parametrize("preset_name", PRESETS)
def test_gemm_random(simulator, preset_name):
    b = runner.build("gemm_bench", preset(preset_name), simulator)
    out = runner.run(b, "hasp.verif.tb.gemm_bench", "random_gemms",
                     args={"seed": 7, "cases": 12}, name=f"gemm-{preset_name}")
    assert out["cases"] == 14 and out["checked"] == 2 * 14 + 1


@pytest.mark.long
@pytest.mark.parametrize("preset_name", PRESETS)
@pytest.mark.parametrize("seed", range(100, 110))
def test_gemm_random_long(simulator, preset_name, seed):
    b = runner.build("gemm_bench", preset(preset_name), simulator)
    out = runner.run(b, "hasp.verif.tb.gemm_bench", "random_gemms",
                     args={"seed": seed, "cases": 40}, name=f"gemm-long-{preset_name}-{seed}")
    assert out["cases"] == 42


@pytest.mark.long
@pytest.mark.parametrize("preset_name", PRESETS)
def test_pe_array_long(simulator, preset_name):
    b = runner.build("pe_array", preset(preset_name), simulator)
    out = runner.run(b, "hasp.verif.tb.pe_array", "random_tiles",
                     args={"seeds": list(range(200, 240)), "idle": 0.3, "backpressure": 0.5},
                     name=f"pe_array-long-{preset_name}")
    assert out["tiles"] == 1 + 40 * 6
