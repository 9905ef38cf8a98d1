"""Name -> implementation tables for the stages of a round (fast-reid's registries, kept tiny).

A preset names its stages (``stages.pseudo_label: kmeans``); the loop looks each name up here.
Registering from outside the package is the point: a new pseudo-labeller is a function with a
decorator in the user's own file, and ``--set stages.pseudo_label=mine`` runs it, no fork needed.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from progreid.errors import ProgReIDError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one stage; ``check`` (optional, per name) validates a run before work;
    ``reads`` names the settings only that implementation uses (``select.frame_window``), so a setting
    no stage of a run reads can be pointed out instead of silently doing nothing."""

    def __init__(self, stage: str):
        self.stage = stage
        self._entries: dict[str, T] = {}
        self._checks: dict[str, Callable[..., None]] = {}
        self._reads: dict[str, tuple[str, ...]] = {}

    def register(self, name: str, check: Callable[..., None] | None = None,
                 reads: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator: ``@PSEUDO_LABELERS.register("kmeans")``. A name can be registered once."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.stage} {name!r} is already registered")
            self._entries[name] = obj
            if check is not None:
                self._checks[name] = check
            self._reads[name] = tuple(reads)
            return obj

        return add

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)
        self._checks.pop(name, None)
        self._reads.pop(name, None)

    def reads(self, name: str) -> tuple[str, ...]:
        """The settings ``name`` declared it reads (dotted keys)."""
        return self._reads.get(name, ())

    def all_reads(self) -> set[str]:
        return {key for keys in self._reads.values() for key in keys}

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ProgReIDError(f"stages.{self.stage}: unknown {name!r}; choose one of {self.names()}.")
        return self._entries[name]

    def check(self, name: str, *args: Any) -> None:
        """Run ``name``'s precondition (e.g. 'needs frame ids'), if it has one."""
        self.get(name)
        if name in self._checks:
            self._checks[name](*args)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
