"""Filter-importance criteria: per-unit scores of channel groups (higher = keep).

Each criterion is declared once in :mod:`pruneql.lang.criteria` (arguments, defaults,
whether it needs data) and implemented once here, registered against that declaration;
:func:`score_groups` dispatches through the registry. Adding a criterion is one
declaration and one registered function ``fn(job: Job, **arguments) -> Scored``.

==============  ===========================================================  ==========
criterion       what it measures                                              module
==============  ===========================================================  ==========
``l1``, ``l2``  norms of the filters writing the channel (Li et al.)         weights
``random``      seeded uniform scores (a baseline)                            random
``taylor``      |mean over positions of dC/dz * z| per example, averaged,     taylor
                l2-normalised per group, minus ``flops_reg`` x cost
``activation``  mean / std of the producer's activated output                activation
``oracle``      loss change of removing the unit alone (abs, or signed)       oracle
``ensemble``    linear fit of the loss over random masks (Sándor et al.)      ensemble
==============  ===========================================================  ==========

Where scores are measured, and why:

* ``taylor`` at the inputs of the layers that consume a unit (the post-activation map, as
  in Molchanov et al.; through a max pool the same number up to a per-layer factor the
  normalisation removes). A unit read by several consumers sums their terms; a unit read
  as several features (flatten -> Linear) averages over them.
* ``activation`` at the producer's activated output: the end of the elementwise chain
  (BatchNorm, activation) right after it, before pooling — the feature map Molchanov et
  al. measure.
* ``oracle`` and ``ensemble`` by the loss of the whole network with units gated off.

Data criteria evaluate in eval mode with the classes already removed gated off, so in
every round of ``iterate`` (and of ``target`` budgets approached in steps) they describe
the network as it stands; weights and train/eval state are left as they were.

Normalisation happens once: ``taylor`` normalises its groups itself (its FLOPs term
comes after), and the score pass divides every other criterion's group vector (live units
only) by its l2 norm. Budgets rank units across groups by these numbers as they are.
"""
from __future__ import annotations

from pruneql.criteria import activation, ensemble, oracle, random, taylor, weights
from pruneql.criteria.activation import mutual_information
from pruneql.criteria.base import Job, Scored, score_groups
from pruneql.criteria.ensemble import EnsembleFitWarning
from pruneql.criteria.magnitude import l1, l2
from pruneql.criteria.random import random_scores
from pruneql.criteria.ranks import spearman
from pruneql.criteria.weights import WEIGHT_CRITERIA, group_weight_scores
from pruneql.lang.criteria import data_criteria

# derived from the registry (kept for the passes that ask "does it need data?")
DATA_CRITERIA = data_criteria()

__all__ = ["DATA_CRITERIA", "EnsembleFitWarning", "Job", "Scored", "WEIGHT_CRITERIA",
           "data_scores", "group_weight_scores", "l1", "l2", "mutual_information",
           "random_scores", "score_groups", "spearman"]
_MODULES = (activation, ensemble, oracle, random, taylor, weights)   # registered on import


def data_scores(name: str, args: dict, model, analysis, groups: list, batches: list,
                removed=None, seed: int = 0, task=None) -> dict:
    """Group id -> scores of data criterion ``name`` (unnormalised, except taylor's): a
    shorthand for :func:`score_groups` with a :class:`Job` built from the arguments."""
    if name not in DATA_CRITERIA:
        raise ValueError(f"unknown data-driven criterion '{name}' "
                         f"(one of {', '.join(DATA_CRITERIA)})")
    job = Job(model, analysis, groups, batches, removed, seed=seed, task=task)
    return score_groups(name, args, job).scores
