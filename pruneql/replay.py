"""A pruning plan you can replay on your own model class.

``plan_of(ctx)`` turns a compile's decisions into a small, versioned, JSON-ready dict:
for every conv/linear/norm module of *your* model that changes (by your module path),
the input and output channels kept (original indices), the attributes that change
(``out_channels``, ``num_features``, ``groups``...) and which tensor axes follow which
side; tensors used directly in ``forward`` (layer scale, per-channel gains) with their
kept indices; the recipe and its sha256; and a fingerprint of the model's structure.

``apply(plan, model)`` rebuilds an instance of your class at the pruned widths, in place,
so the pruned weights load into it and its own ``forward`` computes what the emitted
model computes. It refuses a plan made for another architecture, a plan of another
version, and a plan whose cut your code cannot follow (a constant in ``forward`` that
the compiler rewrote, such as the channel padding of an option-A shortcut).

>>> import torch
>>> from torch import fx, nn
>>> import pruneql
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
>>> result = pruneql.compile("prune 0 by l1 keep 0.5", net,
...                          example_inputs=torch.randn(1, 3, 8, 8))
>>> mine = apply(result.plan, nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
...                                         nn.ReLU(), nn.Conv2d(8, 4, 1)))
>>> mine[0].out_channels, mine[1].num_features, mine[3].weight.shape[1]
(4, 4, 4)
>>> _ = mine.load_state_dict(result.state_dict())
>>> x = torch.randn(2, 3, 8, 8)
>>> torch.allclose(mine.eval()(x), result.module(x), atol=1e-6)
True
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from itertools import chain

import torch
from torch import fx, nn

from pruneql.errors import PruneQLError, first_line
from pruneql.lang import describe

__all__ = ["FORMAT", "VERSION", "ReplayError", "apply", "dumps", "fingerprint", "load_plan",
           "plan_of", "user_state_dict"]

FORMAT = "pruneql-plan"
VERSION = 1
# graph constants the rewrite pass may change (node.meta keys): they live in forward()
_CODE_META = {"pruneql.pad": "channel padding (F.pad)", "pruneql.slice": "a channel slice",
              "pruneql.split": "a split/chunk of the channels",
              "pruneql.view": "a literal channel count in view/reshape",
              "pruneql.groups": "a literal group count"}
_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


class ReplayError(PruneQLError):
    """A plan cannot be applied to this model."""

    stage = "replay"


# ---- fingerprints ----------------------------------------------------------------------------

def fingerprint(model: nn.Module) -> str:
    """A hash of the model's structure: module names and class names, parameter and buffer
    names and shapes (not values, dtypes or devices).

    >>> from torch import fx, nn
    >>> a, b = nn.Linear(4, 2), nn.Linear(4, 2)
    >>> fingerprint(a) == fingerprint(b), fingerprint(a) == fingerprint(nn.Linear(4, 3))
    (True, False)
    """
    return _hash(_structure(model))


def _structure(model: nn.Module) -> list:
    rows = [[name, type(m).__qualname__] for name, m in model.named_modules()]
    tensors = chain(model.named_parameters(), model.named_buffers())
    return rows + [[name, list(t.shape)] for name, t in tensors]


def _hash(rows: list) -> str:
    text = json.dumps(rows, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---- building a plan (from a compile's context) -----------------------------------------------

def plan_of(ctx) -> dict:
    """The replayable plan of a finished compile (``ctx`` as ``passes.run(COMPILE, ...)``
    returns it; ``compile`` keeps it as ``result.plan``).

    Layers are named by the module paths of the model that was compiled; layers the graph
    made from functional calls (``owner.conv2d``) become plain tensor entries, and cuts
    that would need your ``forward`` changed are listed under ``blockers``.
    """
    names = _Names(ctx)
    layers, tensors, blockers = [], {}, []
    transposed = {n.target for n in ctx.gm.graph.nodes if n.meta.get("pruneql.transposed")}
    blockers += [{"where": name, "why": "a layer that stores its weight as (in, out) "
                  "(Hugging Face's Conv1D), held transposed by the compiled graph: its "
                  "weights do not load into the model's own layer"}
                 for name in sorted(transposed)]
    for layer in ctx.analysis.layers.values():
        if layer.functional:       # frozen, or a fixed depthwise filter sliced as tensors
            continue
        keep_in, keep_out = ctx.cut.keep_index(layer.in_elems), ctx.cut.keep_index(layer.out_elems)
        if keep_in is None and keep_out is None:
            continue
        if layer.kind not in _SHAPES:
            blockers.append({"where": layer.name, "why": f"a {layer.kind} layer, which apply "
                             "cannot rebuild"})
            continue
        entry = _layer_entry(layer, keep_in, keep_out)
        if not entry["tensors"] and not entry["attributes"]:
            continue
        if layer.name in names.modules:
            layers.append(entry)
        else:
            _as_tensors(entry, layer, names, tensors, blockers)
    for param in ctx.analysis.params.values():
        keep = ctx.cut.keep_index(param.ids)
        if keep is not None:
            _add_tensor(tensors, names, param.target, param.axis, keep, blockers)
    layers += _norms_from_tensors(tensors, names)
    code, fixes = _code_changes(ctx)
    plan = _assemble(ctx, names, layers, tensors, blockers + code)
    if code and not blockers:
        _try_forward(ctx, plan, code, fixes)
    return plan


def _try_forward(ctx, plan: dict, code: list, fixes: list) -> None:
    """Constants of ``forward`` changed with the cut (a channel count in a reshape, the
    number of heads): the model's own code may follow them — ``reshape(B, T, -1)``, sizes
    read from the input — or not (``reshape(B, N, self.dim)``). Find out: rebuild a copy
    of the model from the plan, load the pruned weights and compare it with the pruned
    module on verify's inputs. Followed, the constants stop being blockers and the plan
    records the check; not followed, the blockers say what went wrong."""
    from pruneql.graph.compare import compare
    from pruneql.graph.copying import share_copy

    inputs = ctx.traced.get("inputs") or ctx.example_inputs
    trial = dict(plan, blockers=[], attributes=fixes)
    try:
        # a copy sharing the model's tensors: apply slices into new ones, and the pruned
        # weights are assigned, never copied into a shared tensor
        mine = apply(trial, share_copy(ctx.model)).eval()
        mine.load_state_dict(user_state_dict(trial, mine, ctx.pruned.state_dict()),
                             assign=True)
        with torch.no_grad():
            found = compare(ctx.pruned.eval()(*inputs), mine(*inputs))
        problem = found.failed
    except Exception as exc:             # the model's own code, on a trial copy
        problem = f"{type(exc).__name__}: {first_line(exc, 200)}" if str(exc).strip() \
            else type(exc).__name__
    if problem:
        for blocker in plan["blockers"]:
            blocker["why"] += f"; rebuilt from the plan, the model's forward() fails: {problem}"
        return
    plan["blockers"] = []
    plan["attributes"] = fixes
    plan["followed"] = [{"where": c["where"], "what": c["why"]} for c in code]
    plan["checked"] = {"batch": int(inputs[0].shape[0]), "max_rel_error": found.max_error,
                       "why": "constants of forward() change with the cut; a copy of the "
                              "model rebuilt from this plan computes what the pruned module "
                              "computes"}


def _assemble(ctx, names, layers: list, tensors: dict, blockers: list) -> dict:
    from pruneql import __version__

    recipe = ctx.recipe
    text = recipe.source or describe(recipe)
    before = _structure(ctx.model)
    return {"format": FORMAT, "version": VERSION, "pruneql": __version__,
            "recipe": {"path": recipe.path, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                       "text": text},
            "model": {"label": ctx.model_label, "class": type(ctx.model).__qualname__,
                      "weights": ctx.weights, "frontend": ctx.traced.get("frontend"),
                      "input": list(ctx.example_inputs[0].shape),
                      "fingerprint": _hash(before),
                      "fingerprint_after": _hash(_after(before, layers, tensors))},
            "layers": sorted(layers, key=lambda e: names.order.get(e["name"], 0)),
            "tensors": [{"name": k, "keep": v} for k, v in sorted(tensors.items())],
            "renames": names.renames(ctx),
            "blockers": blockers}


class _Names:
    """The compiled model's names for the traced graph's modules and tensors."""

    def __init__(self, ctx):
        self.model = ctx.model
        self.modules = dict(ctx.model.named_modules())
        self.order = {name: i for i, name in enumerate(self.modules)}
        self.state = ctx.model.state_dict(keep_vars=True)
        self.by_id = {id(t): k for k, t in self.state.items()}
        self.gm = ctx.gm

    def tensor(self, gm_name: str) -> str | None:
        """The model's name of a graph tensor: the same name with the same shape, else the
        same object (a functional layer's weight moved into a new module)."""
        found = _get(self.gm, gm_name)
        mine = self.state.get(gm_name)
        if mine is not None and found is not None and mine.shape == found.shape:
            return gm_name
        return self.by_id.get(id(found)) if found is not None else None

    def renames(self, ctx) -> dict:
        """Pruned state_dict keys that are not the model's own: key -> the model's name, or
        None for graph-only constants (dropped when loading)."""
        source = ctx.pruned if ctx.pruned is not None else ctx.gm
        found = {}
        for key in source.state_dict():
            mine = self.tensor(key)
            if mine != key:
                found[key] = mine
        return found


def _get(module: nn.Module, name: str):
    owner, _, attr = name.rpartition(".")
    try:
        holder = module.get_submodule(owner) if owner else module
    except AttributeError:
        return None
    found = getattr(holder, attr, None)
    return found if isinstance(found, torch.Tensor) else None


def _layer_entry(layer, keep_in, keep_out) -> dict:
    """Kept indices, the attributes that change, and which tensor axes follow which side
    (the same slicing as the rewrite pass)."""
    module, kind = layer.module, layer.kind
    n_in = None if keep_in is None else len(keep_in)
    n_out = None if keep_out is None else len(keep_out)
    attrs, axes = _SHAPES[kind](module, n_in, n_out)
    current = {k: _plain(getattr(module, k)) for k in attrs}
    changed = {k: [current[k], v] for k, v in attrs.items() if current[k] != v}
    present = {t: a for t, a in axes.items()
               if getattr(module, t, None) is not None and all(
                   (keep_in if side == "in" else keep_out) is not None for side in a.values())}
    return {"name": layer.name, "type": type(module).__qualname__, "kind": kind,
            "in": _indices(keep_in), "out": _indices(keep_out), "attributes": changed,
            "tensors": present}


def _plain(value):
    """An attribute as JSON holds it (``normalized_shape`` is a tuple)."""
    return list(value) if isinstance(value, tuple) else value


def _indices(keep) -> list | None:
    if keep is None:
        return None
    return [int(i) for i in (keep.tolist() if hasattr(keep, "tolist") else keep)]


def _conv_shape(m, n_in, n_out) -> tuple:
    grouped = m.groups > 1          # whole groups go: the per-group input width stays
    out = m.out_channels if n_out is None else n_out
    groups = m.groups * out // m.out_channels if grouped else 1
    per_group = m.weight.shape[1] if grouped or n_in is None else n_in
    weight = _cut_axes((("0", "out"),) if grouped else (("0", "out"), ("1", "in")), n_in, n_out)
    return ({"in_channels": per_group * groups, "out_channels": out, "groups": groups},
            {"weight": weight, "bias": {"0": "out"}})


def _cut_axes(axes: tuple, n_in, n_out) -> dict:
    """``{axis: side}`` of a weight's ``(axis, side)`` pairs whose side is cut."""
    return {a: s for a, s in axes if (n_in if s == "in" else n_out) is not None}


def _conv_transpose_shape(m, n_in, n_out) -> tuple:
    attrs = {"in_channels": m.in_channels if n_in is None else n_in,
             "out_channels": m.out_channels if n_out is None else n_out}
    return attrs, {"weight": _cut_axes((("0", "in"), ("1", "out")), n_in, n_out),
                   "bias": {"0": "out"}}


def _linear_shape(m, n_in, n_out) -> tuple:
    attrs = {"in_features": m.in_features if n_in is None else n_in,
             "out_features": m.out_features if n_out is None else n_out}
    return attrs, {"weight": _cut_axes((("0", "out"), ("1", "in")), n_in, n_out),
                   "bias": {"0": "out"}}


def _embedding_shape(m, n_in, n_out) -> tuple:
    # an embedding's columns are its output features; its rows (the vocabulary) stay
    return ({"embedding_dim": m.embedding_dim if n_out is None else n_out},
            {"weight": {"1": "out"}} if n_out is not None else {})


def _norm_shape(m, n_in, n_out) -> tuple:
    return norm_attributes(m, n_out), {t: {"0": "out"} for t in _NORM_TENSORS}


_SHAPES = {"conv": _conv_shape, "convT": _conv_transpose_shape, "linear": _linear_shape,
           "norm": _norm_shape, "embedding": _embedding_shape}


def norm_attributes(module: nn.Module, n: int | None) -> dict:
    """The channel-count attributes of a norm (or PReLU) module with ``n`` channels.

    >>> norm_attributes(nn.GroupNorm(4, 16), 8), norm_attributes(nn.BatchNorm2d(16), 8)
    ({'num_groups': 2, 'num_channels': 8}, {'num_features': 8})
    """
    if isinstance(module, nn.GroupNorm):
        n = module.num_channels if n is None else n
        return {"num_groups": module.num_groups * n // module.num_channels, "num_channels": n}
    if isinstance(module, nn.PReLU):
        return {"num_parameters": module.num_parameters if n is None else n}
    if hasattr(module, "normalized_shape"):        # LayerNorm / RMSNorm over the last dim
        shape = list(module.normalized_shape)
        return {"normalized_shape": shape if n is None else shape[:-1] + [n]}
    return {"num_features": module.num_features if n is None else n}


def _as_tensors(entry: dict, layer, names: _Names, tensors: dict, blockers: list) -> None:
    """A layer the graph made (``owner.conv2d`` from ``F.conv2d(x, self.w)``): its weights
    are the model's tensors, which ``forward`` passes to the function as they are."""
    if entry["attributes"].get("groups"):
        blockers.append({"where": layer.name, "why": "a functional grouped convolution: its "
                         "group count is written in forward(), which apply cannot change"})
        return
    keeps = {"in": entry["in"], "out": entry["out"]}
    for attr, axes in entry["tensors"].items():
        for axis, side in axes.items():
            _add_tensor(tensors, names, f"{layer.name}.{attr}", int(axis), keeps[side],
                        blockers)


def _add_tensor(tensors: dict, names: _Names, gm_name: str, axis: int, keep, blockers) -> None:
    mine = names.tensor(gm_name)
    if mine is None:
        blockers.append({"where": gm_name, "why": "a tensor the traced graph uses that is "
                         "not a parameter or buffer of the model"})
        return
    tensors.setdefault(mine, {})[str(axis)] = _indices(keep)


def _norms_from_tensors(tensors: dict, names: _Names) -> list:
    """Norm modules whose tensors the graph used directly (``F.batch_norm`` in an exported
    graph) become layer entries, so their ``num_features`` follows."""
    owners: dict = {}
    for name in tensors:
        owner, _, attr = name.rpartition(".")
        owners.setdefault(owner, {})[attr] = tensors[name]
    found = []
    for owner, parts in owners.items():
        module = names.modules.get(owner)
        if not isinstance(module, _norm_classes()) or set(parts) - set(_NORM_TENSORS):
            continue
        keeps = {json.dumps(p, sort_keys=True) for p in parts.values()}
        if len(keeps) != 1 or set(next(iter(parts.values()))) != {"0"}:
            continue
        keep = next(iter(parts.values()))["0"]
        for attr in parts:
            tensors.pop(f"{owner}.{attr}")
        changed = {k: [_plain(getattr(module, k)), v]
                   for k, v in norm_attributes(module, len(keep)).items()}
        found.append({"name": owner, "type": type(module).__qualname__, "kind": "norm",
                      "in": None, "out": keep, "attributes": changed,
                      "tensors": {t: {"0": "out"} for t in _NORM_TENSORS}})
    return found


def _norm_classes() -> tuple:
    from pruneql.graph.ops import NORM_MODULES

    return NORM_MODULES + (nn.PReLU, nn.LayerNorm, nn.RMSNorm)


def _code_changes(ctx) -> tuple:
    """Constants of ``forward`` that the cut rewrites (channel padding, slices, split
    sizes, literal view sizes, group counts, an RMSNorm's eps): ``(changes, fixes)``,
    where ``fixes`` are the module attributes that likely hold those constants
    (``num_heads``, ``eps``: the one attribute of the calling module with the old value)
    — ``_try_forward`` finds out whether the model's code follows with them."""
    after = {n.name: n for n in ctx.pruned.graph.nodes}
    found, fixes = [], {}
    for node in ctx.gm.graph.nodes:
        key = next((k for k in _CODE_META if k in node.meta), None)
        if key is None and "pruneql.rms" in node.meta and node.users:
            node, key = next(iter(node.users)), "pruneql.rms"
        if key is None:
            continue
        new = after.get(node.name)
        if key == "pruneql.split":
            changed = _loses_channels(ctx, node.args[0] if node.args else node.kwargs["input"])
        else:
            changed = new is None or _constants(new) != _constants(node)
        if changed:
            what = _CODE_META.get(key, "the eps of an RMSNorm over pruned channels")
            found.append({"where": node.name, "why": f"{what} in forward() changes with the "
                          f"cut ({node.format_node()})"})
            if new is not None:
                _propose(ctx, node, new, fixes)
    return found, [f for f in fixes.values() if f is not None]


def _propose(ctx, node, new, fixes: dict) -> None:
    """The owner module's one attribute equal to each changed literal of ``node``."""
    stack = node.meta.get("nn_module_stack")
    owner = _path(list(stack.values())[-1][0]) if stack else None
    try:
        module = ctx.model.get_submodule(owner) if owner else None
    except AttributeError:
        module = None
    if module is None:
        return
    old_values, new_values = _scalars(_constants(node)), _scalars(_constants(new))
    if len(old_values) != len(new_values):
        return
    for old, value in zip(old_values, new_values):
        if old is None or value is None or old == value:
            continue
        names = [k for k, v in vars(module).items() if type(v) is type(old) and v == old]
        if len(names) != 1:
            continue
        key = (owner, names[0])
        fix = {"module": owner, "name": names[0], "before": old, "after": value}
        if key in fixes and fixes[key] != fix:
            fixes[key] = None               # two different new values: no guess
        else:
            fixes.setdefault(key, fix)


def _path(owner):
    """A module path as fx or torch.export records it (``L['self'].layers[0]`` too)."""
    if not owner:
        return owner
    owner = re.sub(r"^L\['self'\]\.?", "", owner)
    return re.sub(r"\[(\d+)\]", r".\1", owner).strip(".")


def _scalars(value) -> list:
    """The literals of a constants tuple in order (None where a node or other object is)."""
    if isinstance(value, tuple):
        return [s for v in value for s in _scalars(v)]
    return [value if type(value) in (int, float) else None]


def _constants(node) -> tuple:
    """A node's arguments with the nodes in them by name and lists as tuples (the rewrite
    writes sizes back as tuples), so graphs compare by value."""
    return _tupled(fx.node.map_arg((node.args, node.kwargs), lambda n: n.name))


def _tupled(value):
    if isinstance(value, (list, tuple)):
        return tuple(_tupled(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _tupled(v)) for k, v in value.items()))
    return value


def _loses_channels(ctx, node) -> bool:
    space = ctx.analysis.spaces.get(node.name)
    return space is not None and not ctx.cut.keep_mask(space.ids).all()


def _after(rows: list, layers: list, tensors: dict) -> list:
    """The structure rows once the plan is applied (for recognising a pruned model)."""
    shapes = {name: list(shape) for name, shape in rows if isinstance(shape, list)}
    for entry in layers:
        keeps = {"in": entry["in"], "out": entry["out"]}
        for attr, axes in entry["tensors"].items():
            name = f"{entry['name']}.{attr}" if entry["name"] else attr
            if name in shapes:
                for axis, side in axes.items():
                    shapes[name][int(axis)] = len(keeps[side])
    for name, keep in tensors.items():
        for axis, kept in keep.items():
            if name in shapes:
                shapes[name][int(axis)] = len(kept)
    return [[name, shapes.get(name, value)] for name, value in rows]


# ---- plan files ------------------------------------------------------------------------------

def dumps(plan: dict) -> str:
    """The plan as JSON text: indented, index lists on one line.

    >>> print(dumps({"layers": [{"out": [0, 2]}]}))
    {
     "layers": [
      {
       "out": [0, 2]
      }
     ]
    }
    """
    text = json.dumps(plan, indent=1)
    return re.sub(r"\[\s+(-?\d+(?:,\s+-?\d+)*)\s+\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text)


def load_plan(source) -> dict:
    """A plan from a dict, or a path to a plan JSON file, checked for format and version.

    >>> load_plan({"format": FORMAT, "version": VERSION})["version"] == VERSION
    True
    """
    if isinstance(source, (str, os.PathLike)):
        source = _read(os.fspath(source))
    if not isinstance(source, dict) or source.get("format") != FORMAT:
        raise ReplayError("this is not a PruneQL plan",
                          hint="write one with `pruneql run ... --plan-out plan.json` or "
                               "result.save_plan(path)")
    if source.get("version") != VERSION:
        raise ReplayError(f"plan version {source.get('version')!r} is not supported "
                          f"(this PruneQL reads version {VERSION})",
                          hint="write the plan again with this version of PruneQL")
    return source


def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ReplayError(f"plan file '{path}' does not exist", hint="check the path") from None
    except (OSError, ValueError) as exc:
        raise ReplayError(f"cannot read plan file '{path}': {exc}",
                          hint="expected the JSON file `--plan-out` writes") from None


# ---- applying a plan -------------------------------------------------------------------------

def apply(plan, model: nn.Module, state_dict: dict | None = None) -> nn.Module:
    """Rebuild ``model`` (an instance of the architecture the plan was made from) at the
    plan's widths, in place, and return it; with ``state_dict`` (the pruned weights, e.g.
    ``result.module.state_dict()`` or ``torch.jit.load("small.pt").state_dict()``), load
    them too, under the model's own names.

    Conv, linear and norm modules keep their identity and class: their parameters and
    buffers are sliced to the kept channels and their attributes (``out_channels``,
    ``in_features``, ``groups``, ``num_features``...) set; tensors used directly in
    ``forward`` are sliced too. Nothing changes when the plan is refused: a plan for
    another structure (fingerprint), of another version, or one that needs ``forward``
    itself changed (``plan["blockers"]``).

    >>> import pruneql
    >>> from torch import fx, nn
    >>> make = lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> result = pruneql.compile("prune 0 by l1 keep 0.25", make(),
    ...                          example_inputs=torch.randn(1, 6))
    >>> apply(result.plan, make())[0]
    Linear(in_features=6, out_features=2, bias=True)
    >>> try:
    ...     apply(result.plan, nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 2)))
    ... except pruneql.PruneQLError as err:
    ...     print(err.message)
    the plan was made for another model: its structure fingerprint differs
    """
    plan = load_plan(plan)
    _check_model(plan, model)
    edits = [_layer_edit(model, entry) for entry in plan["layers"]]
    edits += [_tensor_edit(model, entry) for entry in plan["tensors"]]
    edits += [_attribute_edit(model, entry) for entry in plan.get("attributes", [])]
    for edit in edits:      # every entry checked before anything changes
        edit()
    if state_dict is not None:
        _load(model, user_state_dict(plan, model, state_dict))
    return model


def _load(model: nn.Module, state: dict) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ReplayError(f"the weights do not fit the rebuilt model: "
                          f"{str(exc).strip().splitlines()[-1][:300]}",
                          hint="pass the pruned weights written by the same compile as the "
                               "plan") from None


def _check_model(plan: dict, model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise ReplayError(f"apply needs a torch.nn.Module, not {type(model).__name__}")
    found = fingerprint(model)
    if found == plan["model"].get("fingerprint_after") != plan["model"]["fingerprint"]:
        raise ReplayError("the model already has the plan's pruned widths",
                          hint="apply a plan once, to a model built at its original widths "
                               "(a fresh instance of your class)")
    if found != plan["model"]["fingerprint"]:
        raise ReplayError("the plan was made for another model: its structure fingerprint "
                          "differs",
                          hint=f"the plan is for {plan['model']['label']} "
                               f"({plan['model']['class']}); build the same class with the "
                               f"same constructor arguments, before any pruning")
    if plan["blockers"]:
        shown = "; ".join(f"{b['where']}: {b['why']}" for b in plan["blockers"][:3])
        more = len(plan["blockers"]) - 3
        raise ReplayError("this plan cannot be replayed on the model's own code: " + shown
                          + (f" (and {more} more)" if more > 0 else ""),
                          hint="use the emitted model (TorchScript, .pt2, ONNX), which has "
                               "the changed constants built in; or skip the groups these "
                               "belong to in the recipe")


def _layer_edit(model: nn.Module, entry: dict):
    """Check one layer entry now; return the change to make later."""
    name = entry["name"]
    try:
        module = model.get_submodule(name)
    except AttributeError:
        raise ReplayError(f"the model has no module '{name}'") from None
    if type(module).__qualname__ != entry["type"]:
        raise ReplayError(f"module '{name}' is a {type(module).__qualname__}, the plan "
                          f"rebuilds a {entry['type']}")
    for attr, (before, _) in entry["attributes"].items():
        current = _plain(getattr(module, attr, None))
        if current != before:
            raise ReplayError(f"cannot rebuild '{name}': its {attr} is {current!r}, the "
                              f"plan expects {before!r}")
    keeps = {"in": entry["in"], "out": entry["out"]}
    slices = [(attr, {int(a): keeps[s] for a, s in axes.items()})
              for attr, axes in entry["tensors"].items()
              if isinstance(getattr(module, attr, None), torch.Tensor)]
    changes = [_slicer(module, attr, keep, f"{name}.{attr}") for attr, keep in slices]

    def edit():
        for change in changes:
            change()
        for attr, (_, after) in entry["attributes"].items():
            current = getattr(module, attr)
            setattr(module, attr, tuple(after) if isinstance(current, tuple) else after)
    return edit


def _attribute_edit(model: nn.Module, entry: dict):
    """A constant of ``forward`` held by a module attribute (``num_heads``, ``eps``)."""
    name, attr = entry["module"], entry["name"]
    try:
        module = model.get_submodule(name) if name else model
    except AttributeError:
        raise ReplayError(f"the model has no module '{name}'") from None
    if getattr(module, attr, None) != entry["before"]:
        raise ReplayError(f"cannot rebuild '{name}': its {attr} is "
                          f"{getattr(module, attr, None)!r}, the plan expects "
                          f"{entry['before']!r}")
    return lambda: setattr(module, attr, entry["after"])


def _tensor_edit(model: nn.Module, entry: dict):
    owner, _, attr = entry["name"].rpartition(".")
    try:
        module = model.get_submodule(owner) if owner else model
    except AttributeError:
        module = None
    if not isinstance(getattr(module, attr, None), torch.Tensor):
        raise ReplayError(f"the model has no tensor '{entry['name']}'")
    return _slicer(module, attr, {int(a): k for a, k in entry["keep"].items()}, entry["name"])


def _slicer(module: nn.Module, attr: str, keep: dict, name: str):
    """Check that ``keep`` (axis -> kept indices) fits the tensor; return the slicing."""
    tensor = getattr(module, attr)
    for axis, kept in keep.items():
        if axis >= tensor.dim() or (kept and max(kept) >= tensor.shape[axis]):
            raise ReplayError(f"cannot slice '{name}' of shape {tuple(tensor.shape)}: the "
                              f"plan keeps indices up to {max(kept)} on axis {axis}")

    def change():
        value = tensor.detach()
        for axis, kept in keep.items():
            value = value.index_select(axis, torch.tensor(kept, dtype=torch.long,
                                                          device=value.device))
        if isinstance(tensor, nn.Parameter):
            value = nn.Parameter(value.clone(), requires_grad=tensor.requires_grad)
        setattr(module, attr, value)
    return change


def user_state_dict(plan: dict, model: nn.Module, state_dict: dict) -> dict:
    """``state_dict`` (the pruned module's) under the model's names: keys renamed per the
    plan, graph-only constants dropped, and tensors the graph never used (a module
    ``forward`` does not call) taken from ``model`` itself.

    >>> plan = {"renames": {"conv2d.weight": "w", "_tensor_constant0": None}}
    >>> net = nn.Module()
    >>> net.w = nn.Parameter(torch.zeros(2))
    >>> dict(user_state_dict(plan, net, {"conv2d.weight": torch.ones(2),
    ...                                  "_tensor_constant0": torch.ones(1)}))
    {'w': tensor([1., 1.])}
    """
    renames = plan.get("renames", {})
    found = model.state_dict()
    for key, value in state_dict.items():
        mine = renames.get(key, key)
        if mine is None:
            continue
        if mine not in found:
            raise ReplayError(f"the weights have a tensor '{key}' the model does not have",
                              hint="pass the pruned model's state_dict (result.module, or "
                                   "the file `pruneql run` wrote) made with this plan")
        found[mine] = value
    return found
