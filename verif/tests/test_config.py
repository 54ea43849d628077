import dataclasses

import pytest

from hasp import config as C


@pytest.mark.parametrize("name", list(C.PRESETS))
def test_presets_round_trip_through_toml(name, tmp_path):
    cfg = C.preset(name)
    p = tmp_path / "c.toml"
    p.write_text(C.dumps(cfg))
    assert C.load(p) == cfg


def test_presets_match_the_brief():
    tiny, fpga, large = C.preset("tiny"), C.preset("fpga"), C.preset("large")
    assert (tiny.mesh.rows, tiny.mesh.cols, tiny.pe.rows, tiny.pe.cols) == (2, 2, 4, 4)
    # every MAC and each core's vector multiplier in one of an ECP5-85F's 156 DSPs
    assert 8 <= fpga.cores <= 16 and fpga.total_macs + fpga.cores <= 156
    assert large.cores >= 64 and large.pe.macs == 256


def test_derived_values():
    cfg = C.preset("tiny").replace(pe={"rows": 3, "cols": 5})
    assert cfg.word_width == 5 * 8 and cfg.pe.lanes == 5 and cfg.total_macs == 4 * 15
    assert cfg.spm.words == 4 * 256 and cfg.spm.addr_width == 10


@pytest.mark.parametrize("section,field,value,words", [
    ("mesh", "rows", 0, "mesh.rows must be >= 1, not 0"),
    ("pe", "cols", -3, "pe.cols must be >= 1, not -3"),
    ("pe", "data_width", 8.5, "pe.data_width must be an integer, not 8.5"),
    ("pe", "rows", True, "pe.rows must be an integer, not True"),
    ("spm", "depth", 100, "spm.depth must be a power of two, not 100"),
    ("pe", "dataflow", "xx", "pe.dataflow must be one of"),
    ("pe", "acc_width", 12, "pe.acc_width must be >= 2 * pe.data_width"),
])
def test_validation_names_field_and_value(section, field, value, words):
    base = getattr(C.ChipConfig(), section)
    with pytest.raises(C.ConfigError, match=words.replace("*", r"\*").replace(".", r"\.")):
        dataclasses.replace(base, **{field: value})


def test_unknown_keys_and_bad_toml_are_named():
    with pytest.raises(C.ConfigError, match=r"unknown key pe\.colz"):
        C.loads("[pe]\ncolz = 4\n")
    with pytest.raises(C.ConfigError, match=r"unknown key 'meshh'"):
        C.loads("[meshh]\nrows = 4\n")
    with pytest.raises(C.ConfigError, match="not valid TOML"):
        C.loads("[pe\n")
    with pytest.raises(C.ConfigError, match="unknown preset 'huge'"):
        C.preset("huge")


def test_partial_file_keeps_defaults():
    cfg = C.loads('name = "x"\n[pe]\nrows = 8\n')
    assert cfg.pe.rows == 8 and cfg.pe.cols == C.PEConfig().cols and cfg.name == "x"
