"""Copies that never touch the caller's model and cost no weight memory until needed.

:func:`share_copy` gives a new module tree (own modules, own train/eval flags, own
attributes) whose parameters and buffers are the caller's tensors. Nothing PruneQL does
to the copy's structure reaches the caller; a pass that changes tensors in place (training)
first takes its own with :func:`own_tensors`. :func:`own_modules` is the cheaper kind of
copy the rewrite needs: new module objects (own attributes, tables and hooks) for a tree
that already shares its modules with another.

>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1))
>>> mine = share_copy(net).eval()
>>> mine[0].weight is net[0].weight, mine[0] is net[0], net.training
(True, False, True)
>>> _ = own_tensors(mine, tensor_ids(net))
>>> mine[0].weight is net[0].weight, torch.equal(mine[0].weight, net[0].weight)
(False, True)
"""
from __future__ import annotations

import copy
import warnings
from collections import OrderedDict

import torch
from torch import nn


def _tensors(module: nn.Module) -> list:
    found = []
    for m in module.modules():
        found += [t for t in m._parameters.values() if t is not None]
        found += [t for t in m._buffers.values() if t is not None]
    return found


def tensor_ids(module: nn.Module) -> frozenset:
    """Identities of every parameter and buffer of ``module``."""
    return frozenset(id(t) for t in _tensors(module))


def share_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that shares its parameters and buffers.

    What ``copy.deepcopy`` does with the tensors in its memo, written out for plain
    modules (no ``__deepcopy__``, ``__reduce__`` or ``__getstate__`` of their own, which get
    ``copy.deepcopy`` itself): a new object per module, every attribute deep-copied
    except the tensors; several times faster on a model of hundreds of modules."""
    memo = {id(t): t for t in _tensors(module)}
    with warnings.catch_warnings():      # pytree specs of exported graphs warn when copied
        warnings.simplefilter("ignore", FutureWarning)
        return _copy_module(module, memo)


_ATOMIC = (int, float, bool, str, type(None), torch.dtype, torch.device)
_STATE = ("__deepcopy__", "__copy__", "__reduce__", "__reduce_ex__", "__getstate__")
_EMPTY = (dict, OrderedDict, set, list)


def _plain(cls: type) -> bool:
    return all(getattr(cls, name, None) is getattr(nn.Module, name, None) for name in _STATE)


def _copy_module(module: nn.Module, memo: dict) -> nn.Module:
    if id(module) in memo:
        return memo[id(module)]
    if not _plain(type(module)):
        return copy.deepcopy(module, memo)
    new = object.__new__(type(module))
    memo[id(module)] = new
    state = {}
    for key, value in module.__dict__.items():
        if key == "_compiled_call_impl":                  # as Module.__getstate__ drops it
            continue
        if key == "_modules":
            state[key] = type(value)((name, None if m is None else _copy_module(m, memo))
                                     for name, m in value.items())
        elif key in ("_parameters", "_buffers"):
            state[key] = type(value)((name, None if t is None else memo.get(id(t), t))
                                     for name, t in value.items())
        elif type(value) in _ATOMIC:
            state[key] = value
        elif type(value) in _EMPTY and not value:          # the many empty hook tables
            state[key] = type(value)()
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__setstate__(state)         # as copy.deepcopy does (a class may set defaults)
    return new


def graph_copy(graph):
    """A copy of an fx graph: new nodes with their own ``meta`` tables (whose values are
    shared)."""
    with warnings.catch_warnings():      # pytree specs of exported graphs warn when copied
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(graph)


def own_tensors(module: nn.Module, borrowed: frozenset) -> nn.Module:
    """Replace every parameter and buffer of ``module`` whose identity is in ``borrowed``
    by a copy, so training ``module`` cannot change the tensors it borrowed. A tensor used
    in several places (tied weights) gets one copy, used in all of them."""
    copies: dict = {}

    def mine(t):
        if id(t) not in copies:
            clone = t.detach().clone()
            copies[id(t)] = nn.Parameter(clone, requires_grad=t.requires_grad) \
                if isinstance(t, nn.Parameter) else clone
        return copies[id(t)]

    for m in module.modules():
        for table in (m._parameters, m._buffers):
            for name, t in list(table.items()):
                if t is not None and id(t) in borrowed:
                    table[name] = mine(t)
    return module


def own_modules(root: nn.Module) -> nn.Module:
    """Give ``root`` its own module objects below it: each submodule is replaced by a
    shallow copy whose attributes, parameter, buffer and hook tables are its own, while its
    tensors stay shared. Setting an attribute, a parameter or a hook on a module of
    ``root`` then changes nothing another tree sees. A module used in several places gets
    one copy, used in all of them.

    >>> inner = torch.nn.Linear(2, 2)
    >>> a, b = torch.nn.Sequential(inner), torch.nn.Sequential(inner)
    >>> _ = own_modules(b)
    >>> b[0] is inner, b[0].weight is inner.weight
    (False, True)
    >>> b[0].out_features = 3; inner.out_features
    2
    """
    memo: dict = {}

    def mine(module: nn.Module) -> nn.Module:
        if id(module) not in memo:
            new = object.__new__(type(module))
            new.__dict__.update({k: _table_copy(v) for k, v in module.__dict__.items()})
            memo[id(module)] = new
            new._modules = type(module._modules)(
                (k, None if m is None else mine(m)) for k, m in module._modules.items())
        return memo[id(module)]

    root._modules = type(root._modules)(
        (k, None if m is None else mine(m)) for k, m in root._modules.items())
    return root


def _table_copy(value):
    """Own copy of a table (dict, list, set); anything else as it is."""
    if type(value) in _EMPTY:
        return type(value)(value)
    return copy.copy(value) if isinstance(value, (dict, list, set)) else value
