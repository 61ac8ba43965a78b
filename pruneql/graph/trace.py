"""torch.fx tracing plus shape propagation; facts go into ``node.meta['pruneql.*']``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp

from pruneql.errors import TraceError

_HINT = ("make the module a leaf (it is then treated as an opaque op and its channels are "
         "frozen), or remove data-dependent Python control flow from forward(); check the "
         "example input shape (`input CxHxW` in the recipe or --input)")


class _PathTracer(fx.Tracer):
    """A tracer that remembers which module it is inside, for error messages."""

    def __init__(self):
        super().__init__()
        self.failed_in: str | None = None

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            # the innermost module wins: outer calls see failed_in already set
            if self.failed_in is None:
                self.failed_in = self.path_of_module(m)
            raise


def symbolic_trace(module: torch.nn.Module) -> fx.GraphModule:
    """Trace ``module`` with torch.fx; failures become a TraceError naming the module."""
    tracer = _PathTracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # fx raises many kinds; all mean "cannot trace"
        where = tracer.failed_in or type(module).__name__
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TraceError(f"cannot trace the model: in module '{where}': {first}",
                         hint=_HINT) from exc
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def propagate_shapes(gm: fx.GraphModule, example_inputs: tuple) -> None:
    """Run ``example_inputs`` through ``gm`` and record every node's output shape.

    ``node.meta['pruneql.shape']`` is a tuple for tensor results and None otherwise. The
    module runs in eval mode without gradients so BatchNorm statistics stay untouched.
    """
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            _propagate(gm, example_inputs)
    except Exception as exc:
        node = getattr(exc, "node", None)
        raise TraceError(f"the model does not run on an input of shape "
                         f"{[tuple(t.shape) for t in example_inputs]}: {_first_line(exc)}",
                         hint="give the right input shape (`input CxHxW` or --input)"
                         + (f"; failed at node {node}" if node else "")) from exc
    finally:
        gm.train(was_training)
    for node in gm.graph.nodes:
        if "pruneql.shape" not in node.meta:     # set by the fake-tensor ShapeProp path
            meta = node.meta.get("tensor_meta")
            node.meta["pruneql.shape"] = tuple(meta.shape) if hasattr(meta, "shape") else None


# above this many parameters shapes come from fake tensors: no arithmetic and no
# activation memory, so plans of large models stay cheap; below it a real forward pass is
# faster than fake tensors' one-off set-up
FAKE_ABOVE_PARAMS = 50_000_000


def _propagate(gm: fx.GraphModule, example_inputs: tuple) -> None:
    for node in gm.graph.nodes:
        node.meta.pop("pruneql.shape", None)
    if sum(p.numel() for p in gm.parameters()) >= FAKE_ABOVE_PARAMS:
        try:
            mode = FakeTensorMode(allow_non_fake_inputs=True)
            ShapeProp(gm, fake_mode=mode).propagate(*example_inputs)
            return
        except Exception:   # an op without a fake implementation: compute for real
            pass
    _Shapes(gm).run(*example_inputs)


class _Shapes(fx.Interpreter):
    """Records each node's output shape. Lighter than ShapeProp, which also imports sympy
    (a third of a second and 45 MiB on a process's first compile)."""

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        n.meta["pruneql.shape"] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_FUNCTIONAL = {F.conv1d: nn.Conv1d, F.conv2d: nn.Conv2d, F.conv3d: nn.Conv3d, F.linear: nn.Linear}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def modularize(gm: fx.GraphModule) -> fx.GraphModule:
    """Turn ``F.conv2d(x, self.w, self.b, ...)``/``F.linear`` on parameters into modules.

    The new module (named ``<owner>.conv2d``, ``<owner>.linear``, ...) takes over the
    parameters, so the rest of the compiler treats functional and module layers alike.
    Calls whose weights are computed, shared or used elsewhere stay as they are (and are
    frozen by the channel analysis).
    """
    changed = False
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _FUNCTIONAL:
            changed |= _modularize_call(gm, node)
    if changed:
        gm.graph.lint()
        gm.recompile()
    return gm


def _modularize_call(gm: fx.GraphModule, node: fx.Node) -> bool:
    names = _CONV_ARGS if node.target is not F.linear else _CONV_ARGS[:3]
    call = {**{k: v for k, v in _CONV_DEFAULTS.items() if k in names},
            **dict(zip(names, node.args)), **node.kwargs}
    params = [call["weight"]] + ([call["bias"]] if call.get("bias") is not None else [])
    if not all(isinstance(p, fx.Node) and p.op == "get_attr" and len(p.users) == 1
               for p in params):
        return False
    tensors = [_attr(gm, p.target) for p in params]
    if not all(isinstance(t, nn.Parameter) for t in tensors):
        return False
    module = _module_for(node.target, call, tensors)
    if module is None:
        return False
    name = _free_name(gm, params[0].target.rpartition(".")[0], node.target.__name__)
    gm.add_submodule(name, module)
    with gm.graph.inserting_before(node):
        replacement = gm.graph.call_module(name, (call["input"],))
    node.replace_all_uses_with(replacement)
    gm.graph.erase_node(node)
    for p in params:
        owner, _, attr = p.target.rpartition(".")
        gm.graph.erase_node(p)
        delattr(gm.get_submodule(owner) if owner else gm, attr)
    return True


def _module_for(fn, call: dict, tensors: list):
    weight, bias = tensors[0], tensors[1] if len(tensors) > 1 else None
    cls = _FUNCTIONAL[fn]
    if cls is nn.Linear:
        module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                           device="meta")
    else:
        static = [call[k] for k in ("stride", "padding", "dilation", "groups")]
        if any(isinstance(v, fx.Node) for v in static):
            return None
        module = cls(weight.shape[1] * call["groups"], weight.shape[0], weight.shape[2:],
                     stride=call["stride"], padding=call["padding"],
                     dilation=call["dilation"], groups=call["groups"],
                     bias=bias is not None, device="meta")
    module.weight = weight
    module.bias = bias
    return module


def _attr(gm: fx.GraphModule, target: str):
    owner, _, attr = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, attr)


def _free_name(gm: fx.GraphModule, owner: str, base: str) -> str:
    existing = dict(gm.named_modules())
    stem = f"{owner}.{base}" if owner else base
    name, i = stem, 1
    while name in existing:
        name, i = f"{stem}_{i}", i + 1
    return name


def trace(module: torch.nn.Module, example_inputs: tuple) -> fx.GraphModule:
    """Trace ``module`` and propagate shapes of ``example_inputs``.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> gm = trace(net, (torch.randn(1, 3, 8, 8),))
    >>> [n.meta['pruneql.shape'] for n in gm.graph.nodes]
    [(1, 3, 8, 8), (1, 8, 6, 6), (1, 8, 6, 6), (1, 8, 6, 6)]
    """
    gm = modularize(symbolic_trace(module))
    propagate_shapes(gm, example_inputs)
    return gm
