"""Saving and loading graphs (float or quantised).

Two encodings of the same document, chosen by the file suffix:

* ``.json``: one JSON file; constant tensors inline as ``{"dtype", "shape", "values"}`` with
  the values flattened in row-major order.
* anything else (``.npz`` recommended): a numpy ``.npz`` archive whose member ``graph.json``
  (uint8 bytes of UTF-8 JSON) is the document and whose other members are the constant
  tensors, referenced from the document as ``{"npz": member}``.

The document::

    {"format": "hasp-frontend-ir", "version": 1, "name": str, "quantized": bool,
     "inputs": [str], "outputs": [str],
     "tensors": [{"name", "shape", "dtype", "qparams": null | {"scale", "zero_point", "axis"},
                  "data": null | <array>}],
     "nodes": [{"name", "op", "attrs": {...}, "inputs", "outputs", "params": {...}}]}

``op`` is an operator class name of :mod:`hasp.sw.frontend.ir` and ``attrs`` its fields.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .ir import OPERATORS, FrontendError, Graph, Node, QParams, Tensor, op_fields

__all__ = ["save", "load", "to_document", "from_document", "FORMAT", "VERSION"]

FORMAT, VERSION = "hasp-frontend-ir", 1


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def to_document(graph: Graph, store=None) -> dict:
    """The JSON document of ``graph``. ``store(array) -> reference`` keeps arrays out of the
    document (npz); without it arrays are inlined."""
    def data(a):
        if a is None:
            return None
        a = np.ascontiguousarray(a)
        if store is not None:
            return {"npz": store(a)}
        return {"dtype": a.dtype.name, "shape": list(a.shape), "values": a.reshape(-1).tolist()}

    def qparams(q):
        return None if q is None else {"scale": list(q.scale) if isinstance(q.scale, tuple)
                                       else q.scale, "zero_point": q.zero_point, "axis": q.axis}

    return {"format": FORMAT, "version": VERSION, "name": graph.name,
            "quantized": graph.quantized, "inputs": graph.inputs, "outputs": graph.outputs,
            "tensors": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                         "qparams": qparams(t.qparams), "data": data(t.data)}
                        for t in graph.tensors.values()],
            "nodes": [{"name": n.name, "op": n.op_type, "attrs": op_fields(n.op),
                       "inputs": n.inputs, "outputs": n.outputs, "params": n.params}
                      for n in graph.nodes]}


def from_document(doc: dict, fetch=None) -> Graph:
    """Rebuild a :class:`Graph` from :func:`to_document` output (``fetch(ref) -> array``)."""
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise FrontendError(f"not a {FORMAT} v{VERSION} document")

    def data(d):
        if d is None:
            return None
        if "npz" in d:
            return fetch(d["npz"])
        return np.array(d["values"], dtype=d["dtype"]).reshape(d["shape"])

    def qparams(q):
        if q is None:
            return None
        s = q["scale"]
        return QParams(tuple(s) if isinstance(s, list) else s, q["zero_point"], q["axis"])

    def op(name, attrs):
        if name not in OPERATORS:
            raise FrontendError(f"unknown operator {name!r} in the document")
        return OPERATORS[name](**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in attrs.items()})

    tensors = {t["name"]: Tensor(t["name"], tuple(t["shape"]), t["dtype"], data(t["data"]),
                                 qparams(t["qparams"])) for t in doc["tensors"]}
    nodes = [Node(n["name"], op(n["op"], n["attrs"]), n["inputs"], n["outputs"], n["params"])
             for n in doc["nodes"]]
    return Graph(doc["name"], tensors, nodes, doc["inputs"], doc["outputs"], doc["quantized"])


def save(graph: Graph, path) -> None:
    """Write ``graph`` to ``path`` (``.json``: single JSON file; otherwise npz archive)."""
    path = Path(path)
    if path.suffix == ".json":
        path.write_text(json.dumps(to_document(graph), default=_json_default))
        return
    arrays: dict[str, np.ndarray] = {}

    def store(a):
        key = f"t{len(arrays)}"
        arrays[key] = a
        return key

    text = json.dumps(to_document(graph, store), default=_json_default).encode()
    with open(path, "wb") as f:
        np.savez_compressed(f, **{"graph.json": np.frombuffer(text, np.uint8)}, **arrays)


def load(path) -> Graph:
    """Read a graph written by :func:`save`."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            return from_document(json.loads(path.read_text()))
        with np.load(path, allow_pickle=False) as z:
            doc = json.loads(z["graph.json"].tobytes().decode())
            return from_document(doc, lambda k: z[k])
    except (OSError, KeyError, ValueError) as e:
        if isinstance(e, FrontendError):
            raise
        raise FrontendError(f"{path}: not a saved graph ({e})") from None
