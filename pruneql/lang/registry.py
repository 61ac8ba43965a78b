"""A registry of declared things (criteria, data sources) and their implementations.

The language declares what exists and what it accepts; the code that does the work
registers against a declaration, and the compiler looks it up by name. Declarations are
torch-free; implementations may use anything.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Thing:
...     name: str
>>> things = Registry("thing", [Thing("a"), Thing("b")])
>>> @things.register("a")
... def do_a(): return 1
>>> things.implementation("a")(), things.names
(1, ('a', 'b'))
>>> try:
...     things.implementation("b")
... except NotImplementedStatement as err:
...     print(err.message)
thing 'b' is not implemented yet
"""
from __future__ import annotations

from typing import Callable, Generic, Iterable, TypeVar

from pruneql.errors import NotImplementedStatement, Span

T = TypeVar("T")


class Registry(Generic[T]):
    """Declarations by name (each with a ``name`` attribute), and one implementation each."""

    def __init__(self, kind: str, declarations: Iterable[T]):
        self.kind = kind
        self.declarations: dict[str, T] = {d.name: d for d in declarations}
        self.names = tuple(sorted(self.declarations))
        self._implementations: dict[str, Callable] = {}

    def __getitem__(self, name: str) -> T:
        return self.declarations[name]

    def __contains__(self, name: object) -> bool:
        return name in self.declarations

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: the function implements the declared ``name``.

        Registering an undeclared name, or a second function for one name, is a ValueError.
        """
        if name not in self.declarations:
            raise ValueError(f"cannot register {self.kind} '{name}': it is not declared "
                             f"(declared: {', '.join(self.names)})")

        def decorate(function: Callable) -> Callable:
            existing = self._implementations.get(name)
            if existing is not None and existing is not function:
                raise ValueError(f"{self.kind} '{name}' is already implemented by "
                                 f"{existing.__module__}.{existing.__qualname__}")
            self._implementations[name] = function
            return function
        return decorate

    def implementation(self, name: str, span: Span | None = None) -> Callable:
        """The function registered for ``name``.

        NotImplementedStatement (pointing at ``span``, the recipe's use of the name) when
        ``name`` is declared but nothing implements it; KeyError when it is not declared.
        """
        if name not in self.declarations:
            raise KeyError(f"no {self.kind} '{name}' is declared")
        if name not in self._implementations:
            done = ", ".join(sorted(self._implementations)) or "none yet"
            raise NotImplementedStatement(f"{self.kind} '{name}' is not implemented yet", span,
                                          f"implemented: {done}")
        return self._implementations[name]

    def implemented(self) -> tuple:
        """Names that have an implementation, sorted."""
        return tuple(sorted(self._implementations))
