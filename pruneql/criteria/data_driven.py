"""Data-driven criteria: channel importance measured by running the model on batches.

Every criterion scores the channels of the requested groups of a traced model (the
GraphModule a :class:`~pruneql.graph.channels.ChannelAnalysis` describes) and returns, per
group, one float64 score per group channel; HIGHER means MORE IMPORTANT (the compiler
removes the lowest). Classes already removed (``removed``, a bool per class id) are gated
off with :func:`pruneql.graph.gates.gated` during every evaluation, so the scores describe
the current, partly pruned network. The model is evaluated in eval mode (BatchNorm on its
running statistics); its weights, ``requires_grad`` flags and train/eval state are left as
they were. The loss is the task's (:mod:`pruneql.tasks`; default the cross-entropy of
``(x, y)`` classification batches).

A channel is *consumed* where a conv/linear layer reads it: the activation ``z`` of a
channel is the input of its consuming layers (for conv -> BN -> ReLU -> conv, the post-ReLU
map, as in Molchanov et al.). A class read by several consumers (a residual stream, a
concatenation feeding several branches) is seen once per consumer; a class read as several
features (flatten -> Linear reads each map as H*W features) is averaged over those features.

``taylor(batches=all, flops_reg=0)``
    Molchanov et al. 2017. Per example n and class c: t_{n,c} = sum over consumers k of the
    mean over k's input positions and the elements of c of (dC/dz)*z; the score is the
    mean over examples of |t_{n,c}| (absolute value per example, before averaging), then
    divided by the l2 norm of the group's score vector (per-layer normalisation, always
    on). With ``flops_reg`` = lambda: score - lambda * F_g, F_g the multiply-adds one channel
    of group g costs (producers' share per output channel plus consumers' share per input
    channel) over the largest F of the groups scored together. One forward and one
    backward per batch for all groups at once (per-example gradients come from a summed
    loss; eval-mode layers do not mix examples).
``activation(stat=mean|std, batches=all)``
    Mean (or standard deviation) of the consumed activation over examples, positions and
    the class's elements, averaged over the consumers.
``oracle(batches=all)``
    |loss with the channel additionally gated off - base loss|, Molchanov's "oracle-abs";
    one evaluation of the batches per channel.
``ensemble(samples=200, keep=0.7, batches=min(4, all))``
    Sándor et al. 2020, linear filter ensembles. Per group: ``samples`` random binary
    masks over the group's (not yet removed) channels, each channel kept with probability
    ``keep`` (a mask dropping every channel is redrawn), a numpy Generator seeded with
    (seed, group id); the mean loss over the batches with the dropped channels gated off;
    a least-squares fit loss ~ b + sum_j a_j mask_j. A channel whose presence lowers the
    loss has a_j < 0; its importance is -a_j. The paper does not state its sampling
    settings: 200 masks (several times the widest layers of the demo models, so the
    65-coefficient fit is well over-determined), keep 0.7 (masks near the operating point
    of a moderate pruning step, with enough variation in every column) and 4 batches (a
    low-noise loss per mask at a cost of ``samples * batches`` forward passes per group)
    are our defaults. Channels already removed get score 0 and stay out of the fit.

The losses of ``oracle`` and ``ensemble`` are means over all examples of the batches used
(equal to the mean of the per-batch means when the batches have equal sizes).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from pruneql.graph.channels import layer_flops
from pruneql.graph.gates import channel_dim, consumers, gated
from pruneql.tasks import Task, to_device

_CLASSIFICATION = Task.named("classification")

DATA_CRITERIA = ("taylor", "activation", "ensemble", "oracle")
__all__ = ["DATA_CRITERIA", "data_scores", "taylor", "activation", "oracle", "ensemble",
           "fit_linear_ensemble", "flops_per_channel", "spearman"]

ENSEMBLE_SAMPLES = 200
ENSEMBLE_KEEP = 0.7
ENSEMBLE_BATCHES = 4


def data_scores(name: str, args: dict, model: torch.nn.Module, analysis, groups: list,
                batches: list, removed: np.ndarray | None = None,
                seed: int = 0, task: Task | None = None) -> dict[int, np.ndarray]:
    """Group id -> importance of each group channel (float64, higher = keep) by ``name``.

    ``args`` are the recipe's criterion arguments (see the module docstring for their
    defaults); ``batches`` a list of ``(x, y)``; ``task`` gives the loss (default:
    classification's cross-entropy).
    """
    task = task or _CLASSIFICATION
    args = dict(args or {})
    batches = list(batches)
    if not batches:
        raise ValueError(f"criterion {name} needs at least one batch of data")
    if removed is None:
        removed = np.zeros(len(analysis.classes), dtype=bool)
    removed = np.asarray(removed, dtype=bool)
    if name == "taylor":
        return taylor(model, analysis, groups, _first(batches, args.get("batches")), removed,
                      flops_reg=float(args.get("flops_reg", 0.0)), task=task)
    if name == "activation":
        return activation(model, analysis, groups, _first(batches, args.get("batches")),
                          removed, stat=args.get("stat", "mean"))
    if name == "oracle":
        return oracle(model, analysis, groups, _first(batches, args.get("batches")), removed,
                      task=task)
    if name == "ensemble":
        use = _first(batches, args.get("batches", ENSEMBLE_BATCHES))
        return ensemble(model, analysis, groups, use, removed,
                        samples=int(args.get("samples", ENSEMBLE_SAMPLES)),
                        keep=float(args.get("keep", ENSEMBLE_KEEP)), seed=seed, task=task)
    raise ValueError(f"unknown data-driven criterion '{name}' "
                     f"(one of {', '.join(DATA_CRITERIA)})")


def _first(batches: list, count) -> list:
    return batches if count is None else batches[:max(1, int(count))]


# ---------------------------------------------------------------- evaluation plumbing

@contextmanager
def _evaluating(model: torch.nn.Module, analysis, removed: np.ndarray):
    """Eval mode, the removed classes gated off; the train/eval state of every submodule is
    restored on exit. Parameters are not touched (their tensors may be the caller's):
    Taylor asks autograd for the activations' gradients alone."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with gated(model, analysis, removed):
            yield model
    finally:
        for m, mode in modes:
            m.training = mode


def _device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _local_index(analysis, groups: list) -> tuple[np.ndarray, list]:
    """Class id -> position in the concatenation of the groups' channels (-1 elsewhere)."""
    local = np.full(len(analysis.classes), -1, dtype=np.int64)
    offsets, start = [], 0
    for group in groups:
        local[group.classes] = np.arange(start, start + group.size)
        offsets.append(start)
        start += group.size
    return local, offsets


class _Probe:
    """Where one consumer reads classes of the scored groups: features and their weights."""

    def __init__(self, layer, analysis, local: np.ndarray, width: int, device):
        self.layer = layer
        self.dim = channel_dim(layer)
        loc = local[analysis.classes[layer.in_elems]]
        feats = np.nonzero(loc >= 0)[0]
        dst = loc[feats]
        counts = np.bincount(dst, minlength=width)
        self.n_features = len(loc)
        self.feats = torch.from_numpy(feats).to(device)
        self.dst = torch.from_numpy(dst).to(device)
        # mean over the elements of each class in this input
        self.weight = torch.from_numpy(1.0 / counts[dst]).to(device)
        self.read = np.zeros(width, dtype=bool)
        self.read[dst] = True

    def matches(self, t) -> bool:
        """Whether ``t`` looks like the analysed input (a shared module may be called on
        other tensors too)."""
        return isinstance(t, torch.Tensor) and t.dim() >= 2 \
            and t.shape[self.dim] == self.n_features

    def per_feature(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (the consumer's input, or a product with it) averaged over positions:
        (N, features)."""
        t = t.movedim(self.dim, 1)
        return t.reshape(t.shape[0], t.shape[1], -1).mean(dim=2)

    def to_classes(self, per_feature: torch.Tensor, out: torch.Tensor) -> None:
        """Add the per-class mean of (N, features) columns into ``out`` (N, width)."""
        picked = per_feature.index_select(1, self.feats).double() * self.weight
        out.index_add_(1, self.dst, picked)


def _setup(model, analysis, groups: list) -> tuple:
    """What taylor and activation share: group offsets into one score vector, its width,
    the probes on the consuming layers, the model's modules and its device."""
    local, offsets = _local_index(analysis, groups)
    width = int(sum(g.size for g in groups))
    probes = _probes(model, analysis, groups, local, width)
    return offsets, width, probes, dict(model.named_modules()), _device(model)


def _probes(model, analysis, groups: list, local: np.ndarray, width: int) -> list:
    device = _device(model)
    return [_Probe(layer, analysis, local, width, device) for layer in consumers(analysis)
            if (local[analysis.classes[layer.in_elems]] >= 0).any()]


def _split(values: np.ndarray, groups: list, offsets: list) -> dict:
    return {g.id: np.asarray(values[o:o + g.size], dtype=np.float64).copy()
            for g, o in zip(groups, offsets)}


def _xy(batch, device):
    x, y = batch
    return x.to(device), to_device(y, device)


@torch.no_grad()
def _mean_loss(model, batches: list, device, task: Task = _CLASSIFICATION) -> float:
    total, count = 0.0, 0
    for batch in batches:
        x, y = _xy(batch, device)
        total += float(task.loss(model(x), y, reduction="sum"))
        count += len(x)
    return total / max(count, 1)


# ---------------------------------------------------------------------------- taylor

def taylor(model, analysis, groups: list, batches: list, removed: np.ndarray,
           flops_reg: float = 0.0, task: Task = _CLASSIFICATION) -> dict:
    """Molchanov et al.'s first-order Taylor criterion, per-layer l2-normalised."""
    if not groups:
        return {}
    offsets, width, probes, modules, device = _setup(model, analysis, groups)
    total = torch.zeros(width, dtype=torch.float64, device=device)
    examples = 0
    state: dict = {}

    def pre_hook(probe):
        def hook(_module, args):
            z = args[0]
            if not probe.matches(z):
                return None
            # a tensor of its own per consumer, so its gradient is this consumer's alone
            z = z.view_as(z) if z.requires_grad else z.detach().requires_grad_(True)
            saved = z.detach()
            state["inputs"].append(z)

            def on_grad(g):
                probe.to_classes(probe.per_feature(g * saved), state["acc"])
            z.register_hook(on_grad)
            return (z,) + tuple(args[1:])
        return hook

    with _evaluating(model, analysis, removed), ExitStack() as stack:
        for probe in probes:
            handle = modules[probe.layer.name].register_forward_pre_hook(pre_hook(probe))
            stack.callback(handle.remove)
        with torch.enable_grad():
            for batch in batches:
                x, y = _xy(batch, device)
                state["acc"] = torch.zeros(len(x), width, dtype=torch.float64, device=device)
                state["inputs"] = []
                loss = task.loss(model(x), y, reduction="sum")
                if loss.requires_grad and state["inputs"]:
                    # gradients of the probed activations only: no parameter's .grad moves
                    torch.autograd.backward(loss, inputs=state["inputs"])
                total += state["acc"].abs().sum(dim=0)
                examples += len(x)
    theta = (total / max(examples, 1)).cpu().numpy()
    scores = _split(theta, groups, offsets)
    for gid, s in scores.items():
        norm = np.sqrt(np.sum(s * s))
        if norm > 0:
            scores[gid] = s / norm
    if flops_reg:
        cost = flops_per_channel(analysis, groups)
        top = max(cost.values()) if cost else 0.0
        if top > 0:
            for gid in scores:
                scores[gid] = scores[gid] - flops_reg * cost[gid] / top
    return scores


def flops_per_channel(analysis, groups: list) -> dict:
    """Group id -> multiply-adds removed with one (average) channel of the group.

    Producers' share: each producer's multiply-adds per group channel. Consumers' share:
    the fraction of a consumer's input features that belong to the group, per channel.
    """
    result = {}
    for group in groups:
        wanted = np.zeros(len(analysis.classes), dtype=bool)
        wanted[group.classes] = True
        cost = 0.0
        for name in group.producers:
            cost += layer_flops(analysis.layers[name]) / group.size
        for layer in consumers(analysis):
            n_in = len(layer.in_elems)
            inside = int(wanted[analysis.classes[layer.in_elems]].sum())
            if inside and n_in:
                cost += layer_flops(layer) * inside / n_in / group.size
        result[group.id] = float(cost)
    return result


# ------------------------------------------------------------------------ activation

def activation(model, analysis, groups: list, batches: list, removed: np.ndarray,
               stat: str = "mean") -> dict:
    """Mean or standard deviation of each channel's consumed activation."""
    if stat not in ("mean", "std"):
        raise ValueError(f"activation stat must be mean or std, got {stat!r}")
    if not groups:
        return {}
    offsets, width, probes, modules, device = _setup(model, analysis, groups)
    # per consumer: sums over examples of the per-example means (over positions and the
    # class's elements) of z and of z^2, and the number of examples
    sums = [torch.zeros(width, dtype=torch.float64, device=device) for _ in probes]
    squares = [torch.zeros(width, dtype=torch.float64, device=device) for _ in probes]
    counts = [0] * len(probes)

    def pre_hook(i, probe):
        def hook(_module, args):
            z = args[0]
            if not probe.matches(z):
                return None
            z = z.detach().double()
            row = torch.zeros(1, width, dtype=torch.float64, device=device)
            probe.to_classes(probe.per_feature(z).sum(dim=0, keepdim=True), row)
            sums[i].add_(row[0])
            row.zero_()
            probe.to_classes(probe.per_feature(z * z).sum(dim=0, keepdim=True), row)
            squares[i].add_(row[0])
            counts[i] += z.shape[0]
            return None
        return hook

    with _evaluating(model, analysis, removed), ExitStack() as stack, \
            torch.no_grad():
        for i, probe in enumerate(probes):
            handle = modules[probe.layer.name].register_forward_pre_hook(pre_hook(i, probe))
            stack.callback(handle.remove)
        for batch in batches:
            x, _ = _xy(batch, device)
            model(x)
    # every example has the same positions and elements: the mean of the per-example
    # means is the mean over examples, positions and elements (likewise for z^2)
    total = np.zeros(width)
    readers = np.zeros(width)
    for probe, s, q, n in zip(probes, sums, squares, counts):
        if n == 0:
            continue
        mean = s.cpu().numpy() / n
        value = mean if stat == "mean" else \
            np.sqrt(np.maximum(q.cpu().numpy() / n - mean * mean, 0.0))
        total[probe.read] += value[probe.read]
        readers[probe.read] += 1
    return _split(total / np.maximum(readers, 1), groups, offsets)


# ---------------------------------------------------------------------------- oracle

def oracle(model, analysis, groups: list, batches: list, removed: np.ndarray,
           task: Task = _CLASSIFICATION) -> dict:
    """|change of the loss| when each channel alone is additionally gated off."""
    device = _device(model)
    with _evaluating(model, analysis, removed):
        base = _mean_loss(model, batches, device, task)
    scores = {}
    for group in groups:
        s = np.zeros(group.size)
        for j, cls in enumerate(group.classes.tolist()):
            if removed[cls]:
                continue
            trial = removed.copy()
            trial[cls] = True
            with _evaluating(model, analysis, trial):
                s[j] = abs(_mean_loss(model, batches, device, task) - base)
        scores[group.id] = s
    return scores


# -------------------------------------------------------------------------- ensemble

def ensemble(model, analysis, groups: list, batches: list, removed: np.ndarray,
             samples: int = ENSEMBLE_SAMPLES, keep: float = ENSEMBLE_KEEP,
             seed: int = 0, task: Task = _CLASSIFICATION) -> dict:
    """Sándor et al.'s linear filter ensembles: -a_j of a least-squares additive fit."""
    device = _device(model)
    scores = {}
    for group in groups:
        live = np.nonzero(~removed[group.classes])[0]
        s = np.zeros(group.size)
        if len(live) == 0:
            scores[group.id] = s
            continue
        masks = sample_masks(len(live), samples, keep, np.random.default_rng([seed, group.id]))
        losses = np.empty(len(masks))
        for i, mask in enumerate(masks):
            trial = removed.copy()
            trial[group.classes[live[~mask]]] = True
            with _evaluating(model, analysis, trial):
                losses[i] = _mean_loss(model, batches, device, task)
        _, coef = fit_linear_ensemble(masks, losses)
        s[live] = -coef
        scores[group.id] = s
    return scores


def sample_masks(n: int, samples: int, keep: float, rng: np.random.Generator) -> np.ndarray:
    """``samples`` bool masks over ``n`` channels, each kept with probability ``keep``;
    a mask keeping nothing is redrawn."""
    masks = rng.random((samples, n)) < keep
    empty = ~masks.any(axis=1)
    while empty.any():
        masks[empty] = rng.random((int(empty.sum()), n)) < keep
        empty = ~masks.any(axis=1)
    return masks


def fit_linear_ensemble(masks: np.ndarray, losses: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares fit losses ~ b + masks @ a; returns (b, a).

    >>> m = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    >>> b, a = fit_linear_ensemble(m, 1.0 + m @ np.array([-0.5, 0.25]))
    >>> round(b, 6), np.round(a, 6).tolist()
    (1.0, [-0.5, 0.25])
    """
    masks = np.asarray(masks, dtype=np.float64)
    design = np.hstack([np.ones((masks.shape[0], 1)), masks])
    coef, *_ = np.linalg.lstsq(design, np.asarray(losses, dtype=np.float64), rcond=None)
    return float(coef[0]), coef[1:]


# -------------------------------------------------------------------------- spearman

def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[0, np.nonzero(np.diff(ordered))[0] + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2.0
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); 0.0 if either is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> round(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 6)
    0.948683
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal lengths, got {a.size} and {b.size}")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    ra, rb = _ranks(a) - (a.size + 1) / 2.0, _ranks(b) - (b.size + 1) / 2.0
    denom = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / denom) if denom > 0 else 0.0
