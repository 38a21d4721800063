"""Loading an ONNX file and folding it at a fixed input shape.

An exported transformer carries two kinds of computation: the per-token arithmetic of the model
and bookkeeping that depends only on the input *shape* (shape arithmetic, position indices, the
causal-mask builder, the RoPE tables).  Once the inputs are fixed to one sequence of ``T0`` tokens
and the padding mask to all ones (padding is the runtime's business: every imported attention
takes the padding mask), the bookkeeping becomes constants.  onnxscript's optimizer folds it;
what remains is matched onto the attention graph by :mod:`compiler.frontends.onnx_patterns`.

``T0`` is a prime that is no dimension of any weight (or, for an export with a fixed input shape,
its sequence length): the imported graph is per-token, so it takes any number of tokens either way.
Embedding tables are kept out of folding (a ``Gather`` on a table stays a ``Gather``) so the input
encoder gets the whole table, not the ``T0`` rows the fixed shape selects.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import FrontendError

PRIMES = (7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)
TOKEN_INPUTS = ("input_ids",)
MASK_INPUTS = ("attention_mask",)
TYPE_INPUTS = ("token_type_ids",)
POSITION_INPUTS = ("position_ids",)


@dataclass
class FoldedModel:
    """The folded graph (an ``onnx_ir`` model), the token count it was folded at and the roles of the
    exported inputs (those fixed to constants included)."""

    model: object
    tokens: int
    path: Path
    roles: dict[str, str] = field(default_factory=dict)


def read_model(path: Path):
    """The ONNX file ``path`` (with its external ``.data`` files) as an ``onnx_ir`` model, or one line."""
    import onnx
    import onnx_ir as ir

    if not path.is_file():
        raise FrontendError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except FileNotFoundError as exc:
        raise FrontendError(f"{path}: external weight file missing ({exc.filename}); copy it beside the file") from None
    except Exception as exc:  # noqa: BLE001  (protobuf raises a zoo of types on corrupt input)
        if "should be stored in" in str(exc):
            raise FrontendError(f"{path}: external weight file missing (the .data file written beside it at "
                                "export); copy it beside the file") from None
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FrontendError(f"{path}: not a readable ONNX model ({reason}); re-export it") from None
    if not proto.graph.node:
        raise FrontendError(f"{path}: not an ONNX model (no graph nodes); re-export it")
    try:
        return ir.serde.deserialize_model(proto)
    except Exception as exc:  # noqa: BLE001
        raise FrontendError(f"{path}: malformed ONNX graph ({str(exc).splitlines()[0][:120]})") from None


def static_tokens(model) -> int | None:
    """The sequence length of an export with fixed input shapes (its reshapes only work at that length)."""
    for value in model.graph.inputs:
        dims = value.shape.dims if value.shape is not None else ()
        if len(dims) >= 2 and isinstance(dims[1], int) and dims[1] > 1:
            return int(dims[1])
    return None


def pick_tokens(model) -> int:
    """A prime token count that is no dimension of any initializer and fits every position table
    (or the fixed sequence length of a static export)."""
    static = static_tokens(model)
    if static is not None:
        return static
    dims = {int(d) for v in model.graph.initializers.values() if v.shape is not None for d in v.shape.dims
            if isinstance(d, int)}
    for t in PRIMES:
        if t not in dims:
            return t
    raise FrontendError("could not pick a token count distinct from every weight dimension")


def input_roles(model, where: str) -> dict[str, str]:
    """Graph input name -> role (tokens, mask, types, positions); unknown inputs are refused."""
    roles = {}
    for value in model.graph.inputs:
        name = value.name
        for role, names in (("tokens", TOKEN_INPUTS), ("mask", MASK_INPUTS), ("types", TYPE_INPUTS),
                            ("positions", POSITION_INPUTS)):
            if name in names:
                roles[name] = role
        if name not in roles:
            if value.dtype is not None and value.dtype.is_floating_point() and len(model.graph.inputs) == 1:
                roles[name] = "vectors"
                continue
            cache = " (key/value caches are not supported: export with use_cache=False)" if "past" in name else ""
            raise FrontendError(f"{where}: graph input {name!r} is not one of input_ids, attention_mask, "
                                f"token_type_ids, position_ids{cache}; export the model with those inputs")
    if "tokens" not in roles.values() and "vectors" not in roles.values():
        raise FrontendError(f"{where}: the graph has no 'input_ids' input; export it with input_ids")
    return roles


def fix_inputs(model, roles: dict[str, str], tokens: int) -> None:
    """Fix every input to (1, tokens); replace the mask, token types and positions by constants."""
    import onnx_ir as ir

    constants = {
        "mask": np.ones((1, tokens), np.int64),
        "types": np.zeros((1, tokens), np.int64),
        "positions": np.arange(tokens, dtype=np.int64)[None],
    }
    kept = []
    for value in list(model.graph.inputs):
        role = roles[value.name]
        if role in constants:
            array = constants[role].astype(value.dtype.numpy() if value.dtype is not None else np.int64)
            if role == "types":
                kept.append(value)
                value.shape = ir.Shape([1, tokens])
                continue
            value.const_value = ir.tensor(array, name=value.name)
            model.graph.register_initializer(value)
        else:
            shape = [1, tokens] + ([int(d) for d in value.shape.dims[2:]] if role == "vectors" else [])
            value.shape = ir.Shape(shape)
            kept.append(value)
    model.graph.inputs.clear()
    model.graph.inputs.extend(kept)


def should_fold(node) -> bool | None:
    """Leave ``Gather`` on an embedding table (a 2-D float initializer) unfolded; fold every other node
    whose inputs are all constants (onnxscript leaves ``ConstantOfShape`` alone by default)."""
    table = node.inputs[0] if node.inputs else None
    if node.op_type == "Gather" and table is not None and table.const_value is not None:
        if table.shape is not None and len(table.shape) == 2 and table.dtype.is_floating_point():
            return False
    if all(v is None or v.const_value is not None for v in node.inputs):
        return True
    return None


def infer_contrib_shapes(model, path: Path):
    """Shapes through onnxruntime's ``com.microsoft`` ops, which onnx's own inference does not know
    (without them the shape arithmetic after a fused op would not fold)."""
    import onnx_ir as ir
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:  # in a scratch directory: on incomplete inference it writes a model file into the working directory
        with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
            proto = SymbolicShapeInference.infer_shapes(ir.serde.serialize_model(model), auto_merge=True)
    except Exception:  # noqa: BLE001  (incomplete inference: fold with what onnx's own inference finds)
        return model
    return ir.serde.deserialize_model(proto)


def fold(path: str | Path) -> FoldedModel:
    """Read ``path`` and fold it at one sequence of a fixed token count."""
    from onnxscript.optimizer import optimize_ir

    path = Path(path)
    model = read_model(path)
    roles = input_roles(model, str(path))
    tokens = pick_tokens(model)
    fix_inputs(model, roles, tokens)
    if any(node.domain == "com.microsoft" for node in model.graph):
        model = infer_contrib_shapes(model, path)
    try:
        optimize_ir(model, num_iterations=3, should_fold=should_fold)
    except Exception as exc:  # noqa: BLE001  (the optimizer reports malformed graphs in many ways)
        raise FrontendError(f"{path}: constant folding failed ({str(exc).splitlines()[0][:160]}); "
                            "check the file with onnx.checker") from None
    return FoldedModel(model=model, tokens=tokens, path=path, roles=roles)
