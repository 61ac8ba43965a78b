"""torch.fx tracing plus shape propagation; facts go into ``node.meta['pruneql.*']``."""
from __future__ import annotations

import torch
from torch import fx
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
            ShapeProp(gm).propagate(*example_inputs)
    except Exception as exc:
        node = getattr(exc, "node", None)
        raise TraceError(f"the model does not run on an input of shape "
                         f"{[tuple(t.shape) for t in example_inputs]}: {_first_line(exc)}",
                         hint="give the right input shape (`input CxHxW` or --input)"
                         + (f"; failed at node {node}" if node else "")) from exc
    finally:
        gm.train(was_training)
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        node.meta["pruneql.shape"] = tuple(meta.shape) if hasattr(meta, "shape") else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def trace(module: torch.nn.Module, example_inputs: tuple) -> fx.GraphModule:
    """Trace ``module`` and propagate shapes of ``example_inputs``.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> gm = trace(net, (torch.randn(1, 3, 8, 8),))
    >>> [n.meta['pruneql.shape'] for n in gm.graph.nodes]
    [(1, 3, 8, 8), (1, 8, 6, 6), (1, 8, 6, 6), (1, 8, 6, 6)]
    """
    gm = symbolic_trace(module)
    propagate_shapes(gm, example_inputs)
    return gm
