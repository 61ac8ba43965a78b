"""Golden files: compare, or rewrite them with PRUNEQL_REGEN=1."""
from __future__ import annotations

import os


def check_golden(path: str, actual: str) -> None:
    """Assert ``actual`` equals the golden file at ``path`` (created when regenerating)."""
    if os.environ.get("PRUNEQL_REGEN"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(actual)
    assert os.path.exists(path), f"missing golden {path}; run with PRUNEQL_REGEN=1"
    with open(path, encoding="utf-8") as f:
        assert actual == f.read(), f"differs from golden {path}"
