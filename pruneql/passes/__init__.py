"""The compiler passes. Each module holds one public function named like the module,
``pass(ctx) -> ctx``; a pipeline is a plain tuple of them."""
from __future__ import annotations

from pruneql.errors import InternalError, PruneQLError
from pruneql.passes.allocate import allocate
from pruneql.passes.channels import channels
from pruneql.passes.data import data
from pruneql.passes.finetune import finetune
from pruneql.passes.load import load
from pruneql.passes.measure import measure
from pruneql.passes.resolve import resolve
from pruneql.passes.rewrite import rewrite
from pruneql.passes.score import score
from pruneql.passes.sensitivity import sensitivity
from pruneql.passes.trace import trace
from pruneql.passes.validate import validate
from pruneql.passes.verify import verify

# `plan` stops after allocation and measures the decisions; `compile` also rewrites the
# weights, verifies the result against the masked original, fine-tunes, and measures it
PLAN = (validate, load, trace, channels, data, resolve, sensitivity, score, allocate, measure)
SENSITIVITY = (validate, load, trace, channels, data, resolve)
COMPILE = (validate, load, trace, channels, data, resolve, sensitivity, score, allocate,
           rewrite, verify, finetune, measure)


def run(pipeline: tuple, ctx):
    """Run passes in order. PruneQL errors pass through; anything else is a bug, reported
    with the pass it happened in and the passes before it."""
    done = []
    for step in pipeline:
        try:
            ctx = step(ctx)
        except PruneQLError:
            raise
        except Exception as exc:
            after = f" (after {', '.join(done)})" if done else ""
            raise InternalError(f"internal error in pass '{step.__name__}'{after}: "
                                f"{type(exc).__name__}: {exc}",
                                hint="this is a PruneQL bug; set PRUNEQL_DEBUG=1 for the "
                                     "traceback and please report it") from exc
        done.append(step.__name__)
    return ctx
