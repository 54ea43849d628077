"""The ONNX "light" model zoo shipped with the ``onnx`` package, and the CLI subcommands."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import shape_inference

from hasp.sw import frontend as fe
from hasp.sw.frontend import cli, examples

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SUPPORTED = ["resnet50", "squeezenet", "inception_v2", "vgg19", "densenet121"]
UNSUPPORTED = {"bvlc_alexnet": "LRN", "zfnet512": "LRN", "inception_v1": "LRN",
               "shufflenet": "Transpose"}
# Published parameter counts (no BatchNormalization in these two): VGG-19 and SqueezeNet 1.1.
PARAMS = {"vgg19": 143_667_240, "squeezenet": 1_235_496}


def path(name):
    return LIGHT / f"light_{name}.onnx"


def test_all_light_models_are_present():
    assert sorted(p.stem[6:] for p in LIGHT.glob("light_*.onnx")) == \
        sorted(SUPPORTED + list(UNSUPPORTED))


def reference_macs(m: onnx.ModelProto) -> int:
    """MACs from ONNX's own shape inference: Conv and Gemm, plus one MAC per element for each
    BatchNormalization that has no Conv directly before it (it becomes a depthwise 1x1 conv)."""
    mi = shape_inference.infer_shapes(m, data_prop=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(mi.graph.value_info) + list(mi.graph.input) + list(mi.graph.output)}
    producer = {o: n for n in m.graph.node for o in n.output}
    uses = {}
    for n in m.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    total = 0
    for n in m.graph.node:
        out = math.prod(shapes[n.output[0]])
        if n.op_type == "Conv":
            total += out * math.prod(shapes[n.input[1]][1:])
        elif n.op_type == "Gemm":
            k = shapes[n.input[0]][1]
            total += out * k
        elif n.op_type == "BatchNormalization":
            p = producer.get(n.input[0])
            if p is None or p.op_type != "Conv" or uses[n.input[0]] > 1:
                total += out
    return total


@pytest.mark.parametrize("name", SUPPORTED)
def test_light_model_imports_with_independent_macs(name):
    m = onnx.load(path(name))
    g = fe.load_onnx(path(name))
    rows = fe.layer_table(g)
    t = fe.totals(rows)
    assert t["macs"] == reference_macs(m)
    assert not any(r.op not in fe.OPERATORS for r in rows)
    assert g.outputs == [o.name for o in m.graph.output]
    assert [g.shape(o) for o in g.outputs] == \
        [tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in m.graph.output]
    if name in PARAMS:
        assert t["weights"] == PARAMS[name]
    bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    assert not any(r.op in ("Mul", "Add") and not r.in_shapes[1:] for r in rows)  # BN folded
    if bn:
        convs = sum(n.op_type == "Conv" for n in m.graph.node)
        assert sum(r.op == "Conv2d" for r in rows) <= convs + bn


@pytest.mark.parametrize("name,op", UNSUPPORTED.items())
def test_light_model_unsupported_operator(name, op):
    assert list(fe.unsupported_operators(path(name))) == [op]
    with pytest.raises(fe.FrontendError, match=rf"node '.+': unsupported operator {op} "):
        fe.load_onnx(path(name))


# ----------------------------------------------------------------------------- CLI
def parse(argv):
    parser = argparse.ArgumentParser(prog="hasp")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_inspect_table(capsys):
    args = parse(["inspect", str(path("squeezenet"))])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model ") and "1x3x224x224" in out[0]
    assert out[1].split() == ["#", "layer", "op", "input", "output", "MACs", "weight", "B"]
    total = out[-1].split()
    assert total[:3] == ["total", "39", "layers"]
    assert total[3] == f"{reference_macs(onnx.load(path('squeezenet'))):,}"
    assert len(out) == 2 + 1 + 39 + 2


def test_cli_inspect_json(capsys):
    args = parse(["inspect", str(path("resnet50")), "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["macs"] == sum(r["macs"] for r in doc["layers"])
    assert doc["totals"]["layers"] == len(doc["layers"])
    first = doc["layers"][0]
    assert first["op"] == "Conv2d" and first["out_shapes"] == [[1, 64, 112, 112]]
    assert first["macs"] == 64 * 112 * 112 * 3 * 7 * 7


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_cli_quantize(tmp_path, capsys, suffix):
    model, x, shape = examples.cnn()
    src, out = tmp_path / "cnn.onnx", tmp_path / f"cnn.q{suffix}"
    src.write_bytes(model.SerializeToString())
    args = parse(["quantize", str(src), "--calib", "3", "--seed", "5", "--out", str(out)])
    assert args.func(args) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    q = fe.load(out)
    rng = np.random.default_rng(5)
    samples = [{x: rng.standard_normal(shape).astype(np.float32)} for _ in range(3)]
    direct = fe.quantize(fe.load_onnx(src), samples)
    feeds = {x: fe.quantize_array(samples[0][x], q.tensors[x].qparams)}
    np.testing.assert_array_equal(fe.run_quantized(q, feeds)["prob"],
                                  fe.run_quantized(direct, feeds)["prob"])


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    for argv in (["inspect", str(path("bvlc_alexnet"))], ["inspect", str(bad)],
                 ["quantize", str(path("squeezenet")), "--calib", "0", "--out", "x.npz"]):
        args = parse(argv)
        with pytest.raises(fe.FrontendError):
            args.func(args)
    assert cli.main(["inspect", str(path("shufflenet"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hasp: error: node '") and "unsupported operator Transpose" in err
    assert err.count("\n") == 1


def test_light_weights_are_the_constant_of_shape_values():
    """The light models carry no trained weights (ConstantOfShape 0.02): check the importer
    materialises exactly that."""
    g = fe.load_onnx(path("squeezenet"))
    w = g.tensors[g.nodes[0].inputs[1]].data
    assert w.shape == (64, 3, 3, 3) and np.all(w == np.float32(0.02))


def test_hasp_cli_wiring(capsys):
    """The subcommands as wired into the ``hasp`` command."""
    from hasp.cli import main
    assert main(["inspect", str(path("vgg19")), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["weights"] == PARAMS["vgg19"]
    assert main(["inspect", str(path("inception_v1"))]) == 2
    assert "hasp: error: node '" in capsys.readouterr().err
