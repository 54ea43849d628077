"""The hasp command line: generation output and user-error handling."""
import json
import subprocess
import sys

import pytest

from hasp.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "hasp.cli", *args], capture_output=True, text=True)


def test_gen_is_deterministic_and_lists_ports(tmp_path):
    for d in ("a", "b"):
        assert main(["gen", "--preset", "fpga", "--out", str(tmp_path / d)]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert any(n.endswith(".v") for n in names) and any(n.endswith(".ports.json") for n in names)
    for n in names:
        text = (tmp_path / "a" / n).read_text()
        assert text == (tmp_path / "b" / n).read_text(), n
        assert str(tmp_path) not in text and "/home/" not in text and "/work/" not in text
    ports = json.loads((tmp_path / "a" / "hasp_pe_array_4x4_d8a32.ports.json").read_text())
    names = {p["name"] for p in ports["ports"]}
    verilog = (tmp_path / "a" / "hasp_pe_array_4x4_d8a32.v").read_text()
    header = verilog[verilog.index("module hasp_pe_array_4x4_d8a32("):].split(";", 1)[0]
    assert names == {s.strip() for s in header.split("(", 1)[1].rstrip(")").split(",")}


@pytest.mark.parametrize("args,words", [
    (["gen", "--preset", "huge", "--out", "x"], "unknown preset 'huge'"),
    (["gen", "--top", "nope", "--out", "x"], "unknown top 'nope'"),
    (["config", "--config", "/nonexistent.toml"], "cannot read config file"),
    (["bench", "noc", "--mc-frac", "0.3"], "multicast traffic needs the lanes router"),
    (["bench", "noc", "--router", "lanes", "--mc-frac", "1.5"], "mc_frac must be in [0, 1]"),
])
def test_bad_input_is_one_line_exit_2(args, words):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("toml,words", [
    ("[pe]\nrows = 0\n", "pe.rows must be >= 1, not 0"),
    ("[pe]\nrows = -4\n", "pe.rows must be >= 1, not -4"),
    ("[pe]\ndata_width = 7.5\n", "pe.data_width must be an integer, not 7.5"),
    ("[spm]\nbankz = 2\n", "unknown key spm.bankz"),
    ("[pe\n", "not valid TOML"),
])
def test_bad_config_file(tmp_path, toml, words):
    p = tmp_path / "c.toml"
    p.write_text(toml)
    r = run_cli("gen", "--config", str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_config_round_trip_through_cli(tmp_path):
    r = run_cli("config", "--preset", "large")
    p = tmp_path / "large.toml"
    p.write_text(r.stdout)
    r2 = run_cli("config", "--preset", "tiny", "--config", str(p))
    assert r.returncode == r2.returncode == 0 and r2.stdout == r.stdout


@pytest.mark.cocotb
def test_demo_runs_end_to_end(capsys, tmp_path):
    """README's main command: the chip runs the MLP bit-exact and reports its figures."""
    from conftest import require_simulator
    require_simulator("verilator")
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "functional model agrees:  True" in out
    assert "utilisation:" in out and (tmp_path / "hasp_chip_tiny.ports.json").exists()
