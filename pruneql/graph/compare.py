"""Comparing model outputs the way verify needs: each output on its own scale, and never
a pass on NaN or infinity.

>>> a = (torch.tensor([1.0, 2.0]), torch.tensor([1e5, 0.0]))
>>> b = (torch.tensor([1.0, 2.1]), torch.tensor([1e5, 0.0]))
>>> found = compare(a, b)
>>> found.worst, found.failed, round(found.errors[0], 3)
(0, 'output 0 differs: relative error 5.00e-02 > 1e-05', 0.05)
>>> compare((torch.tensor([float('nan')]),), (torch.tensor([0.0]),)).failed
'output 0 of the reference is not finite (nan at (0,)): cannot decide'
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils._pytree import tree_flatten

TOLERANCE = 1e-5


@dataclass
class Comparison:
    """Per output: the relative error (max |a - b| over max |a|); the first failure."""

    errors: list = field(default_factory=list)
    failed: str | None = None
    worst: int | None = None          # index of the output with the largest error
    undecided: bool = False           # a NaN or infinity: nothing can be concluded

    @property
    def max_error(self) -> float:
        return max(self.errors, default=0.0)


def flat(outputs) -> list:
    """The tensors of a model's (possibly nested) outputs, in order."""
    return [t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor)]


def compare(expected, actual, tol: float = TOLERANCE) -> Comparison:
    """Compare two models' outputs; ``failed`` says why they do not match, if they don't."""
    want, got = flat(expected), flat(actual)
    found = Comparison()
    if len(want) != len(got):
        found.failed = f"{len(got)} outputs, expected {len(want)}"
        return found
    for i, (a, b) in enumerate(zip(want, got)):
        problem, error = _one(i, a, b, tol)
        found.errors.append(error)
        if problem and found.failed is None:
            found.failed = problem
            found.undecided = "not finite" in problem
    if found.errors:
        found.worst = max(range(len(found.errors)), key=found.errors.__getitem__)
    return found


def _one(i: int, want: torch.Tensor, got: torch.Tensor, tol: float) -> tuple:
    if tuple(want.shape) != tuple(got.shape):
        return f"output {i} has shape {tuple(got.shape)}, expected {tuple(want.shape)}", \
            float("inf")
    for name, t in (("reference", want), ("result", got)):
        bad = _non_finite(t)
        if bad is not None:
            return f"output {i} of the {name} is not finite ({bad}): cannot decide", \
                float("inf")
    if not want.is_floating_point() and not want.is_complex():
        same = torch.equal(want, got.to(want.dtype))
        return (None if same else f"output {i} differs (exact values)"), 0.0 if same else 1.0
    want, got = want.double(), got.double()
    scale = want.abs().max().item() if want.numel() else 0.0
    error = (want - got).abs().max().item() / scale if want.numel() and scale > 0 else \
        (got.abs().max().item() if got.numel() else 0.0)
    if error > tol:
        return f"output {i} differs: relative error {error:.2e} > {tol:.0e}", error
    return None, error


def _non_finite(t: torch.Tensor) -> str | None:
    """'nan at (0, 3)' for the first non-finite element, or None."""
    if not (t.is_floating_point() or t.is_complex()):
        return None
    bad = ~torch.isfinite(t)
    if not bad.any():
        return None
    where = tuple(int(v) for v in torch.nonzero(bad)[0].tolist())
    return f"{t[where].item()} at {where}"
