"""The substrates the engine can run, as they registered themselves. The engine imports no
substrate: the package ``ecosim.substrates`` (and any installed package that declares an
``ecosim.substrates`` entry point) calls ``register`` and ``declare`` from its torch-free config
modules, and the engine imports that package by name the first time it needs to know a substrate
(``load``). A substrate's own module (torch, models) is imported only to run or check a scenario
on it (``of``); what it must provide is ``ecosim.substrates.protocol.Substrate``.

What the engine learns here:
- each substrate: its name, the ``substrate:`` value (family) that selects it, whether it claims
  a scenario (world and real models share the family ``lm`` and split it by the bases), and the
  dotted path of its module;
- the slots of the scenario schema the engine leaves open (``base``, ``trait``: the entries of
  ``bases`` and ``traits``; ``student``: how a lineage's students train; ``filter``: a dataset
  filter), the sections substrates add (``teacher``, ``eval``, ``text``, ``mlp``), their entries
  of the one rules table, and checks that need a whole scenario."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from ecosim.errors import EcosimError

PACKAGE = "ecosim.substrates"    # the shipped substrates, imported by name (never by the engine's code)
ENTRY_POINTS = "ecosim.substrates"  # other packages' substrates: each entry point names a module to import


@dataclass(frozen=True)
class Entry:
    name: str
    family: str                  # the scenario's `substrate:` value that selects it
    module: str                  # dotted path of the module implementing protocol.Substrate
    claims: Callable[[Any], bool]  # does it run this scenario? (may raise EcosimError: a clear refusal)


_entries: dict[str, Entry] = {}
_slots: dict[str, tuple[type, Callable]] = {}
_sections: dict[str, tuple[type, Callable]] = {}
_rules: dict[type, dict] = {}
_checks: list[Callable] = []
_loaded = False


def register(name: str, family: str, module: str, claims: Callable[[Any], bool]) -> None:
    _entries[name] = Entry(name, family, module, claims)


def declare(slots: dict | None = None, sections: dict | None = None, rules: dict | None = None,
            check: Callable | None = None) -> None:
    """``slots``/``sections``: {name: (dataclass, default factory)}; ``rules``: {dataclass: {field:
    rule}} (merged field by field into the one table); ``check(sc) -> [problem]``."""
    _slots.update(slots or {})
    _sections.update(sections or {})
    for cls, r in (rules or {}).items():
        _rules.setdefault(cls, {}).update(r)
    if check is not None and check not in _checks:
        _checks.append(check)


def load() -> None:
    """Import the substrates (once): the shipped package and every entry point."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module(PACKAGE)
    for ep in entry_points(group=ENTRY_POINTS):
        importlib.import_module(ep.value)


def entries() -> dict[str, Entry]:
    load()
    return dict(_entries)


def families() -> tuple[str, ...]:
    return tuple(dict.fromkeys(e.family for e in entries().values()))


def slots() -> dict[str, tuple[type, Callable]]:
    load()
    return dict(_slots)


def sections() -> dict[str, tuple[type, Callable]]:
    load()
    return dict(_sections)


def rules() -> dict[type, dict]:
    load()
    return {cls: dict(r) for cls, r in _rules.items()}


def checks() -> list[Callable]:
    load()
    return list(_checks)


def entry(sc) -> Entry:
    """The substrate that claims scenario ``sc`` (EcosimError: none, or its refusal)."""
    for e in entries().values():
        if e.claims(sc):
            return e
    raise EcosimError(f"substrate: no substrate runs {sc.substrate!r} with these bases; one of {list(families())}")


def of(sc):
    """The module of the substrate that runs scenario ``sc`` (imported here, at run time)."""
    e = entry(sc)
    try:
        return importlib.import_module(e.module)
    except ModuleNotFoundError as err:
        if err.name != e.module:
            raise
        raise EcosimError(f"substrate {e.name}: this installation does not have {e.module}") from None
