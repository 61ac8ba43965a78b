"""Golden files: compare, or rewrite them with PRUNEQL_REGEN=1 -- a run that rewrites fails.

A missing golden fails (it is never created silently); with PRUNEQL_REGEN set, the file is
written and the test fails with "regenerated PATH; re-run without PRUNEQL_REGEN", so a
regenerating run can never be green: review the diff, then run the tests again.
"""
from __future__ import annotations

import os

import pytest

REGEN_VARIABLE = "PRUNEQL_REGEN"


def regenerating() -> bool:
    """Whether this run rewrites golden files (PRUNEQL_REGEN set and not empty or 0)."""
    return os.environ.get(REGEN_VARIABLE, "") not in ("", "0")


def check_golden(path: str | os.PathLike, actual: str) -> None:
    """Fail unless ``actual`` equals the golden file at ``path``.

    When regenerating, write ``actual`` to ``path`` and fail anyway.
    """
    path = os.fspath(path)
    if regenerating():
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(actual)
        pytest.fail(f"regenerated {path}; re-run without {REGEN_VARIABLE}", pytrace=False)
    if not os.path.exists(path):
        pytest.fail(f"missing golden {path}; create it with {REGEN_VARIABLE}=1, review it, "
                    f"then re-run without {REGEN_VARIABLE}", pytrace=False)
    with open(path, encoding="utf-8", newline="") as f:
        expected = f.read()
    assert actual == expected, f"differs from golden {path}"
