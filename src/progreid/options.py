"""Valid values of every option, declared once, next to the option's default.

A config field is declared with :func:`opt` (``lr: float = opt(0.001, gt=0)``); the same
:class:`Check` guards the CLI flags that set it (:func:`flag`), so ``--set train.lr=-0.1`` and a
flag with a negative value fail alike, before any work, naming the option, the value and the range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from progreid.errors import ProgReIDError


@dataclass(frozen=True)
class Check:
    """A number's bounds (``ge``/``gt``/``le``/``lt``), or a set of ``choices`` (a tuple, or a function
    returning one, for registries filled at import time). ``words``: strings accepted besides a
    number (``auto``); a string option with bounds holds a number written as text (``cluster.eps``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | Callable[[], Iterable[Any]] | None = None
    words: tuple[str, ...] = ()
    integer: bool = False

    def allowed(self) -> tuple[Any, ...] | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def describe(self) -> str:
        choices = self.allowed()
        if choices is not None:
            return "one of " + ", ".join(str(c) for c in choices)
        bounds = [f">= {_num(self.ge)}" if self.ge is not None else "", f"> {_num(self.gt)}" if self.gt is not None else "",
                  f"<= {_num(self.le)}" if self.le is not None else "", f"< {_num(self.lt)}" if self.lt is not None else ""]
        kind = "a whole number" if self.integer else "a number"
        text = f"{kind} {' and '.join(b for b in bounds if b)}".strip()
        return " or ".join([*self.words, text]) if self.words else text

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid, or None."""
        choices = self.allowed()
        if choices is not None:
            return None if value in choices else f"must be {self.describe()}"
        if isinstance(value, str) and value in self.words:
            return None
        number = value
        if isinstance(value, str):
            try:
                number = float(value) if not self.integer else int(value)
            except ValueError:
                return f"must be {self.describe()}"
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != number:
            return f"must be {self.describe()}"
        if self.integer and number != int(number):
            return f"must be {self.describe()}"
        if (self.ge is not None and number < self.ge) or (self.gt is not None and number <= self.gt) or \
                (self.le is not None and number > self.le) or (self.lt is not None and number >= self.lt):
            return f"must be {self.describe()}"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def opt(default: Any, **check: Any) -> Any:
    """A dataclass field with a default and its :class:`Check`."""
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        raise TypeError("opt() takes immutable defaults")
    return field(default=default, metadata={"check": Check(**check)})


def check_of(obj: Any, name: str) -> Check | None:
    for f in dataclasses.fields(obj):
        if f.name == name:
            return f.metadata.get("check")
    return None


def validate(obj: Any, where: str = "") -> None:
    """Check every declared field of a (nested) dataclass; the first invalid one is an error naming it."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            validate(value, key)
            continue
        check = f.metadata.get("check")
        problem = check.problem(value) if check else None
        if problem:
            raise ProgReIDError(f"{key}={value!r}: {problem}. Fix: --set {key}=<a valid value>.")


def flag(name: str, check: Check, cast: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse ``type=`` for a command-line flag with ``check``'s range; argparse reports the error."""
    import argparse

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {check.describe()}") from None
        problem = check.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r} {problem}")
        return value

    parse.__name__ = name
    return parse
