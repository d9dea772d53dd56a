"""The bodies of the standard inference protocols `gitreg serve` speaks beside its own /predict:
the Open Inference Protocol V2 (KServe, Triton: ``/v2/models/{model}/infer``) and MLflow's
scoring convention (``/invocations``). Parsed from and built to plain JSON values here, no HTTP
and no torch: a request becomes the batch /predict would run (nested lists, one row per
observation), checked further by ``runtime.check_inputs`` on the one shared inference path.

Bodies are untrusted: every field's type is checked, shapes are bounded (rank, no zero or
negative dimension), the data must hold exactly as many numbers as the shape says, and nesting
is walked level by level (no recursion), at most ``MAX_RANK`` deep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

from gitreg.serve.runtime import BadInput

V2_INPUT = "input"  # the one input tensor of a served policy (as its metadata names it)
V2_OUTPUT = "output"  # and its one output tensor
MAX_RANK = 8  # the deepest tensor taken (runtime's nesting limit)
_FLOATS = ("FP16", "FP32", "FP64")
_INTS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
DATATYPES = (*_FLOATS, *_INTS)  # what an input may be: the policy runs in float32 either way


@dataclass(slots=True)
class V2Request:
    """One V2 inference request, structurally checked (not yet against a model's shape)."""

    id: str | None
    shape: list[int]
    data: list[Any]  # flat, row-major, ``prod(shape)`` numbers


def v2_request(body: Any) -> V2Request:
    """Check a decoded V2 inference request body; the one input's shape and flat data."""
    if not isinstance(body, dict):
        raise BadInput('the body must be a JSON object with "inputs" (Open Inference Protocol V2)')
    rid = body.get("id")
    if rid is not None and not isinstance(rid, str):
        raise BadInput("id must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadInput('"inputs" must be a non-empty list of tensors {name, shape, datatype, data}')
    if len(inputs) != 1:
        raise BadInput(f"the model takes one input tensor, {V2_INPUT!r}; got {len(inputs)}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadInput("inputs[0] must be an object {name, shape, datatype, data}")
    name = tensor.get("name")
    if name != V2_INPUT:
        raise BadInput(f"unknown input {name!r}: the model's input is {V2_INPUT!r} (see /v2/models/...)")
    params = tensor.get("parameters")
    if isinstance(params, dict) and "binary_data_size" in params:
        raise BadInput(
            "binary tensor data is not supported: send the data as JSON "
            "(tritonclient: set_data_from_numpy(array, binary_data=False))"
        )
    shape = _shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise BadInput(f"datatype {datatype!r} is not supported: one of {', '.join(DATATYPES)}")
    data = _flat(tensor.get("data"), shape)
    _check_values(data, datatype)
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise BadInput('"outputs" must be a list of {name} objects')
        for o in outputs:
            if o.get("name") != V2_OUTPUT:
                raise BadInput(f"unknown output {o.get('name')!r}: the model's output is {V2_OUTPUT!r}")
    return V2Request(rid, shape, data)


def v2_batch(request: V2Request, input_shape: list[int] | None) -> list[Any]:
    """The request's data as a batch of nested rows (what /predict runs), its shape checked
    against the model's input shape (``None``: any, its rows only have to agree)."""
    shape = request.shape
    if input_shape and shape[1:] != list(input_shape):
        want = [-1, *input_shape]
        raise BadInput(f"shape {shape} does not fit the model's input {want} (-1: the batch)")
    level: list[Any] = request.data
    for dim in reversed(shape[1:]):
        level = [level[i : i + dim] for i in range(0, len(level), dim)]
    return level


def v2_response(model: str, version: str, rid: str | None, outputs: Any) -> dict[str, Any]:
    """The V2 answer to a batch's outputs (nested lists, one per row): flat, row-major."""
    shape: list[int] = []
    node = outputs
    while isinstance(node, list):
        shape.append(len(node))
        node = node[0] if node else None
    flat = outputs if isinstance(outputs, list) else [outputs]
    for _ in range(len(shape) - 1):
        flat = list(chain.from_iterable(flat))
    datatype = "BOOL" if isinstance(node, bool) else "INT64" if isinstance(node, int) else "FP32"
    answer: dict[str, Any] = {"model_name": model, "model_version": version}
    if rid is not None:
        answer["id"] = rid
    answer["outputs"] = [{"name": V2_OUTPUT, "datatype": datatype, "shape": shape, "data": flat}]
    return answer


def mlflow_inputs(body: Any) -> list[Any]:
    """The batch of an MLflow scoring body: ``{"inputs": [...]}`` or ``{"instances": [...]}``."""
    if isinstance(body, dict):
        keys = [k for k in ("inputs", "instances") if k in body]
        if len(keys) == 1 and isinstance(body[keys[0]], list):
            return list(body[keys[0]])
        if len(keys) == 2:
            raise BadInput('send "inputs" or "instances", not both')
        if keys:
            raise BadInput(f"{keys[0]} must be a list (a batch of observations)")
    raise BadInput(
        'the body must be a JSON object with "inputs" or "instances" (a batch of observations); '
        "dataframe_split and dataframe_records are not supported"
    )


def _shape(shape: Any) -> list[int]:
    if not isinstance(shape, list) or not shape:
        raise BadInput("shape must be a non-empty list of dimensions, the batch first")
    if len(shape) > MAX_RANK:
        raise BadInput(f"shape {shape[: MAX_RANK + 1]}… has more than {MAX_RANK} dimensions")
    if not all(type(d) is int and d > 0 for d in shape):
        raise BadInput(f"shape {shape} must hold positive integers")
    return shape


def _flat(data: Any, shape: list[int]) -> list[Any]:
    """``data`` flat, row-major: as sent, or nested exactly as ``shape`` says."""
    if not isinstance(data, list):
        raise BadInput("data must be a list of numbers (flat, row-major, or nested as the shape)")
    size = math.prod(shape)
    if data and isinstance(data[0], list):
        if len(data) != shape[0]:
            raise BadInput(f"nested data holds {len(data)} rows, shape {shape} needs {shape[0]}")
        level = data
        for depth, dim in enumerate(shape[1:], 1):
            if set(map(type, level)) != {list} or set(map(len, level)) != {dim}:
                raise BadInput(f"nested data does not match shape {shape} at depth {depth}")
            level = list(chain.from_iterable(level))
        data = level
    if len(data) != size:
        raise BadInput(f"data holds {len(data)} values, shape {shape} needs {size}")
    return data


def _check_values(data: list[Any], datatype: str) -> None:
    types = set(map(type, data))
    if datatype in _INTS:
        if types != {int}:
            raise BadInput(f"{datatype} data must hold integers only")
        low, high = _INTS[datatype]
        if min(data) < low or max(data) > high:
            raise BadInput(f"data is out of the {datatype} range")
    elif not types <= {int, float}:  # bool is not a number here (runtime refuses it too)
        bad = next(t for t in types if t not in (int, float))
        raise BadInput(f"{datatype} data must hold numbers, not {bad.__name__}")
