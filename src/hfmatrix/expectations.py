"""Golden values per stack: one value that holds on every stack, or the stacks where it
legitimately differs declared beside it, each with the reason (like transformers'
``Expectations``). A value that differs where nothing is declared fails, naming the stack."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from packaging.requirements import Requirement

from hfmatrix import results


@dataclass(frozen=True)
class Differs:
    """The value expected where ``stack`` holds (a requirement on an installed package,
    e.g. ``"transformers<5"``), and why it differs there (one line)."""

    stack: str
    value: Any
    reason: str

    def applies(self) -> bool:
        """Whether this process's packages meet ``stack``."""
        return holds(self.stack)

    @property
    def label(self) -> str:
        return f"{self.stack}: {self.reason}"


@dataclass(frozen=True)
class Expected:
    """A golden value and the stacks where it is declared to differ (first match wins)."""

    default: Any
    differs: tuple[Differs, ...] = ()

    def resolve(self) -> tuple[Any, str | None]:
        """(the value that applies here, the declared expectation's label or None)."""
        for declared in self.differs:
            if declared.applies():
                return declared.value, declared.label
        return self.default, None


def expect(default: Any, *differs: Differs) -> Expected:
    """``default`` everywhere, except where one of ``differs`` applies."""
    return Expected(default, differs)


def resolve(expected: Any) -> tuple[Any, str | None]:
    """A plain value, or an Expected's value for this stack, with its label."""
    return expected.resolve() if isinstance(expected, Expected) else (expected, None)


def holds(stack: str) -> bool:
    """Whether this process's packages meet ``stack``, a requirement (``"transformers<5"``)."""
    requirement = Requirement(stack)
    version = installed(requirement.name)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


@cache
def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stack_words() -> str:
    """This process's stack, named as a failing check names it: ``stack tf4 (transformers
    4.57.6 · torch 2.15.0)`` (results.stack's name and label)."""
    here = results.stack()
    return (
        f"stack {here['name']} ({here['label']})"
        if here["name"]
        else f"this stack ({here['label']})"
    )


def unexplained(detail: str, label: str | None) -> str:
    """A failed golden check's detail, saying which expectation it was held to and where."""
    if label is None:
        return f"{detail}; on {stack_words()}, where no difference is declared"
    return f"{detail}; on {stack_words()}, under the declared {label}"
