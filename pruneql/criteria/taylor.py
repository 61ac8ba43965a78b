"""Molchanov et al.'s first-order Taylor criterion, with its FLOPs regularisation.

Per example n and unit c: t_{n,c} = sum over the consumers k that read c of the mean over
k's input positions (and c's elements there) of (dC/dz)*z, z being k's input; the score
is the mean over examples of |t_{n,c}| (absolute value per example, then the average),
divided by the l2 norm of its group's vector (per-layer normalisation, always on).

Measured at the consumers' inputs. Where a max pool sits between the producer's
activation and its consumer this is the same number up to a factor per layer, which the
normalisation removes: the pool routes each window's gradient to its maximum alone, so
sum(dC/dz * z) over the pooled map equals the sum over the map before pooling.

``flops_reg`` = lambda: score - lambda * F_c / F_max, with F_c the multiply-adds one unit
of the group costs in the network as it stands (each conv/linear layer writing or reading
the unit contributes its current FLOPs divided by its current width on that side, times
the unit's elements there; averaged over the group's live units) and F_max the largest
such cost of any prunable group of the unpruned network. So lambda is in units of the
normalised score: lambda = 0.1 takes 0.1 off the costliest channel of the network, and
the same lambda means the same thing in every round of ``iterate``, whichever groups a
statement selects. A group's scores all shift by the same amount, so the term changes
nothing within a group: it acts where groups are ranked together (``target``).
"""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import torch

from pruneql.criteria.base import Job, Scored
from pruneql.criteria.evaluation import device_of, evaluating, local_index, probes, split, xy
from pruneql.graph.channels import PRODUCER_KINDS, layer_flops
from pruneql.graph.gates import consumers
from pruneql.lang.criteria import register


@register("taylor")
def taylor(job: Job, *, flops_reg: float) -> Scored:
    """Normalised Taylor scores, minus ``flops_reg`` times each group's normalised cost."""
    theta = _theta(job)
    for gid, s in theta.items():
        norm = np.sqrt(np.sum(s * s))
        if norm > 0:
            theta[gid] = s / norm
    if flops_reg:
        cost = flops_per_channel(job.analysis, job.groups, job.removed)
        top = max(flops_per_channel(job.analysis, _prunable(job.analysis)).values(),
                  default=0.0)
        for gid in theta:
            theta[gid] = theta[gid] - flops_reg * cost[gid] / (top or 1.0)
    return Scored(theta, normalised=True)


def _prunable(analysis) -> list:
    return [g for g in analysis.groups if g.prunable]


def _theta(job: Job) -> dict:
    """The mean over examples of |t_{n,c}|, per group, unnormalised."""
    local, offsets, width = local_index(job.analysis, job.groups)
    found = probes(job.model, job.analysis, local, width)
    modules = dict(job.model.named_modules())
    device = device_of(job.model)
    total = torch.zeros(width, dtype=torch.float64, device=device)
    examples = 0
    state: dict = {}
    with evaluating(job.model, job.analysis, job.removed), ExitStack() as stack:
        for probe in found:
            handle = modules[probe.layer.name].register_forward_pre_hook(_hook(probe, state))
            stack.callback(handle.remove)
        with torch.enable_grad():
            for batch in job.batches:
                x, y = xy(batch, device)
                state["acc"] = torch.zeros(len(x), width, dtype=torch.float64, device=device)
                state["inputs"] = []
                loss = job.task.loss(job.model(x), y, reduction="sum")
                if loss.requires_grad and state["inputs"]:
                    # gradients of the probed activations only: no parameter's .grad moves
                    torch.autograd.backward(loss, inputs=state["inputs"])
                total += state["acc"].abs().sum(dim=0)
                examples += len(x)
    return split((total / max(examples, 1)).cpu().numpy(), job.groups, offsets)


def _hook(probe, state: dict):
    def hook(_module, args):
        z = args[0]
        if not probe.matches(z):
            return None
        # a tensor of its own per consumer, so its gradient is this consumer's alone
        z = z.view_as(z) if z.requires_grad else z.detach().requires_grad_(True)
        saved = z.detach()
        state["inputs"].append(z)

        def on_grad(g):
            probe.to_units(probe.per_feature(g * saved), state["acc"])
        z.register_hook(on_grad)
        return (z,) + tuple(args[1:])
    return hook


def flops_per_channel(analysis, groups: list, removed: np.ndarray | None = None) -> dict:
    """Group id -> multiply-adds one live unit of the group costs, with ``removed`` gone.

    Each conv/linear layer writing the unit adds its FLOPs over its output width, each one
    reading it its FLOPs over its input width (times the unit's elements on that side),
    both at the current widths; the sum is averaged over the group's live units.
    """
    if removed is None:
        removed = np.zeros(len(analysis.classes), dtype=bool)
    shares = _unit_shares(analysis, removed)
    result = {}
    for group in groups:
        live = ~removed[group.classes]
        result[group.id] = float(shares[group.classes[live]].sum() / max(live.sum(), 1))
    return result


def _unit_shares(analysis, removed: np.ndarray) -> np.ndarray:
    """Class id -> the multiply-adds that ride on it (its share of every layer's FLOPs)."""
    shares = np.zeros(len(analysis.classes))
    readers = {layer.name for layer in consumers(analysis)}
    for layer in analysis.layers.values():
        if layer.kind not in PRODUCER_KINDS:
            continue
        widths = [None, None]
        sides = [(0, layer.in_elems) if layer.name in readers else (0, None),
                 (1, layer.out_elems)]
        for side, elems in sides:
            if elems is not None:
                widths[side] = int(analysis.kept(elems, removed).sum())
        flops = layer_flops(layer, *widths)
        for side, elems in sides:
            if elems is not None and widths[side]:
                np.add.at(shares, analysis.classes[elems], flops / widths[side])
    shares[removed] = 0.0
    return shares
