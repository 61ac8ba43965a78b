"""Tracing plus shape propagation; facts go into ``node.meta['pruneql.*']``.

Models are traced in eval mode (the mode they are verified and deployed in): an
``if self.training:`` branch is then traced in its eval form. A custom
``torch.autograd.Function`` is kept as one call (``Fn.apply``) instead of being traced
through, so the pruned model still trains with the user's ``backward``; the channel
analysis freezes what flows through it.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.shape_prop import ShapeProp

from pruneql.errors import TraceError, first_line
from pruneql.graph import shapes
from pruneql.graph.ops import opaque_leaf

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


@functools.lru_cache(maxsize=None)
def autograd_call(fn_class: type):
    """A plain function standing for ``fn_class.apply`` in a graph (fx can name it)."""
    def call(*args, **kwargs):
        return fn_class.apply(*args, **kwargs)
    call.__name__ = call.__qualname__ = f"{fn_class.__name__}_apply"
    call.__module__ = "pruneql.autograd"
    call.autograd_function = fn_class
    return call


@contextlib.contextmanager
def _autograd_leaves(tracer: fx.Tracer):
    """While tracing, ``Fn.apply`` on proxies records one call instead of Fn.forward."""
    original = torch.autograd.Function.__dict__["apply"]

    def apply(cls, *args, **kwargs):
        if any(isinstance(a, fx.Proxy) for a in _leaves((args, kwargs))):
            return tracer.create_proxy("call_function", autograd_call(cls), args, kwargs)
        return original.__func__(cls, *args, **kwargs)

    torch.autograd.Function.apply = classmethod(apply)
    try:
        yield
    finally:
        torch.autograd.Function.apply = original


def _leaves(value) -> list:
    found: list = []
    fx.node.map_aggregate(value, lambda v: found.append(v) or v)
    return found


def symbolic_trace(module: torch.nn.Module) -> fx.GraphModule:
    """Trace ``module`` with torch.fx; failures become a TraceError naming the module."""
    tracer = _PathTracer()
    try:
        with _autograd_leaves(tracer):
            graph = tracer.trace(module)
    except Exception as exc:  # fx raises many kinds; all mean "cannot trace"
        where = tracer.failed_in or type(module).__name__
        raise TraceError(f"cannot trace the model: in module '{where}': {first_line(exc)}",
                         hint=_HINT) from exc
    return fx.GraphModule(tracer.root, graph, type(module).__name__)


def second_batch(example_inputs: tuple, seed: int = 0) -> tuple:
    """The example inputs with a fresh random example appended along the batch: a batch
    of another size, with data the example did not have (verify runs on it).

    >>> x = (torch.zeros(1, 3), torch.tensor([[5, 7]]))
    >>> a, b = second_batch(x)
    >>> a.shape, b.shape, bool((b[1] >= 5).all() and (b[1] <= 7).all())
    (torch.Size([2, 3]), torch.Size([2, 2]), True)
    """
    generator = torch.Generator().manual_seed(10_000 + seed)
    return tuple(torch.cat([t, _fresh(t, generator)]) if isinstance(t, torch.Tensor)
                 and t.dim() >= 1 else t for t in example_inputs)


def _fresh(t: torch.Tensor, generator) -> torch.Tensor:
    """One new example like ``t``'s first: normal floats, or integers in its range."""
    shape = (1, *t.shape[1:])
    if t.is_floating_point():
        return torch.randn(shape, generator=generator).to(t.dtype)
    if t.dtype == torch.bool:
        return torch.rand(shape, generator=generator) < 0.5
    low, high = int(t.min()), int(t.max())
    return torch.randint(low, high + 1, shape, generator=generator).to(t.dtype)


def propagate_shapes(gm: fx.GraphModule, inputs: tuple, fake_ok: bool = True):
    """Run ``inputs`` through ``gm`` (no gradients) and record every node's output shape
    in ``node.meta['pruneql.shape']`` (a tuple for tensors, None otherwise).

    Returns the outputs, or None when ``fake_ok`` and shapes came without the model's
    arithmetic: with stand-ins for its conv, linear, BatchNorm and activation modules when
    no op's shape depends on values (:mod:`pruneql.graph.shapes`), else from fake tensors
    for large models (no activation memory either).
    """
    try:
        with torch.no_grad():
            return _propagate(gm, inputs, fake_ok)
    except Exception as exc:
        node = getattr(exc, "node", None)
        raise TraceError(f"the model does not run on an input of shape "
                         f"{[tuple(t.shape) for t in inputs]}: {first_line(exc)}",
                         hint="give the right input shape (`input CxHxW` or --input)"
                         + (f"; failed at node {node}" if node else "")) from exc


# above this many parameters shapes come from fake tensors: no arithmetic and no
# activation memory, so plans of large models stay cheap; below it a real forward pass is
# faster than fake tensors' one-off set-up
FAKE_ABOVE_PARAMS = 50_000_000


def _propagate(gm: fx.GraphModule, inputs: tuple, fake_ok: bool):
    for node in gm.graph.nodes:
        node.meta.pop("pruneql.shape", None)
    if fake_ok and shapes.values_irrelevant(gm):
        try:
            _Shapes(gm, stand_ins=True).run(*inputs)
            return None
        except Exception:   # a layer the stand-ins cannot account for: compute for real
            pass
    if fake_ok and sum(p.numel() for p in gm.parameters()) >= FAKE_ABOVE_PARAMS:
        try:
            mode = FakeTensorMode(allow_non_fake_inputs=True)
            ShapeProp(gm, fake_mode=mode).propagate(*inputs)
            for node in gm.graph.nodes:
                meta = node.meta.get("tensor_meta")
                node.meta["pruneql.shape"] = tuple(meta.shape) if hasattr(meta, "shape") \
                    else None
                node.meta["pruneql.dtype"] = getattr(meta, "dtype", None)
            return None
        except Exception:   # an op without a fake implementation: compute for real
            pass
    return _Shapes(gm).run(*inputs)


class _Shapes(fx.Interpreter):
    """Records each node's output shape. Lighter than ShapeProp, which also imports sympy
    (a third of a second and 45 MiB on a process's first compile). A module kept as one
    call that holds parameters the analysis cannot see into (``opaque_leaf``) also gets
    its multiply-adds measured (``pruneql.leaf_macs``), so FLOPs count what it runs.
    With ``stand_ins``, conv, linear, BatchNorm and activation modules are not computed
    (:func:`pruneql.graph.shapes.stand_in`)."""

    def __init__(self, gm: fx.GraphModule, stand_ins: bool = False):
        super().__init__(gm)
        self.stand_ins = stand_ins

    def call_module(self, target, args, kwargs):
        if self.stand_ins:
            out = shapes.stand_in(self.fetch_attr(target), args, kwargs)
            if out is not None:
                return out
        return super().call_module(target, args, kwargs)

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        module = self.module.get_submodule(n.target) if n.op == "call_module" else None
        if module is not None and opaque_leaf(module):
            n.meta["pruneql.leaf_macs"] = _leaf_macs(module, *self.fetch_args_kwargs_from_env(n))
        tensor = isinstance(out, torch.Tensor)
        n.meta["pruneql.shape"] = tuple(out.shape) if tensor else None
        n.meta["pruneql.dtype"] = out.dtype if tensor else None
        return out


def _leaf_macs(module: torch.nn.Module, args: tuple, kwargs: dict) -> int:
    """Multiply-adds of one call of a leaf module, by torch's FLOP counter: run again with
    autograd on and attention on its math kernel, so fused fast paths (which the counter
    cannot see into) are not taken."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            module(*args, **kwargs)
    except Exception:        # the measured call differs from the real one: count nothing
        return 0
    return int(counter.get_total_flops() // 2)


def trace(module: torch.nn.Module, example_inputs: tuple) -> fx.GraphModule:
    """Trace ``module`` symbolically and record the shapes of ``example_inputs``.

    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    >>> gm = trace(net, (torch.randn(1, 3, 8, 8),))
    >>> [n.meta['pruneql.shape'] for n in gm.graph.nodes]
    [(1, 3, 8, 8), (1, 8, 6, 6), (1, 8, 6, 6), (1, 8, 6, 6)]
    """
    gm = symbolic_trace(module)
    propagate_shapes(gm, example_inputs)
    return gm
