"""Typed configs from YAML + key=value overrides (OmegaConf structured configs), validated up
front: every problem is collected and reported at once, with the file, key path and what was
expected, never as a traceback from deep inside a library."""
from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import fields, is_dataclass

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import EcosimError


def _leaves(d, prefix=""):
    """(dotted key, value) for every leaf of a nested dict; lists are leaves."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _leaves(v, key + ".")
        else:
            yield key, v


def _schema_of(tp):
    """(kind, dataclass) for a field type: ('dc', X) for a dataclass X, ('dict', X) for
    dict[str, X] and ('list', X) for list[X] with X a dataclass, else (None, None)."""
    if is_dataclass(tp):
        return "dc", tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin is dict and len(args) == 2 and is_dataclass(args[1]):
        return "dict", args[1]
    if origin is list and args and is_dataclass(args[0]):
        return "list", args[0]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _schema_of(args[0])
    return None, None


def _unknown_keys(cls, data: dict, where: str) -> list[tuple[str, str]]:
    """(dotted key, message) for every key of ``data`` (nested) that is not a field of dataclass
    ``cls``, with a did-you-mean hint. A list element's bad key is reported under the list."""
    hints = typing.get_type_hints(cls)
    out = []
    for k, v in data.items():
        key = f"{where}.{k}" if where else str(k)
        if k not in hints:
            near = difflib.get_close_matches(str(k), list(hints), n=1)
            hint = (f"did you mean {(where + '.' if where else '') + near[0]!r}?" if near
                    else f"expected one of {sorted(hints)}")
            out.append((key, f"{key}: unknown key {k!r} in {where or 'the top level'}; {hint}"))
            continue
        kind, sub = _schema_of(hints[k])
        if kind == "dc" and isinstance(v, dict):
            out += _unknown_keys(sub, v, key)
        elif kind == "dict" and isinstance(v, dict):
            for name, item in v.items():
                if isinstance(item, dict):
                    out += _unknown_keys(sub, item, f"{key}.{name}")
        elif kind == "list" and isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    out += [(key, m) for _, m in _unknown_keys(sub, item, f"{key}[{i}]")]
    return out


def _add_entries(node, cls, data: dict) -> None:
    """Create the named entries of dict[str, dataclass] fields (with their defaults) before
    leaf-by-leaf updates, so that ``lineages.new.base=x`` makes a new lineage."""
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        kind, sub = _schema_of(hints.get(k))
        if not isinstance(v, dict):
            continue
        if kind == "dc":
            if node.get(k) is None:  # an optional section left at None: set keys make it (defaults first)
                node[k] = OmegaConf.structured(sub())
            _add_entries(node[k], sub, v)
        elif kind == "dict":
            for name, item in v.items():
                if name not in node[k]:
                    node[k][name] = OmegaConf.structured(sub())
                if isinstance(item, dict):
                    _add_entries(node[k][name], sub, item)


def load_config(schema, path: str | None = None, overrides=(), checks=None):
    """``schema``: a dataclass instance holding the defaults. Returns a validated instance.

    ``checks(cfg) -> list[str]`` adds semantic problems (choices, ranges)."""
    errors: list[str] = []
    cfg = OmegaConf.structured(schema)
    sources = []
    if path is not None:
        if not os.path.isfile(path):
            raise EcosimError(f"{path}: config file not found")
        try:
            data = OmegaConf.to_container(OmegaConf.load(path))
        except Exception as e:  # yaml.YAMLError and friends
            raise EcosimError(f"{path}: not readable YAML: {str(e).splitlines()[0]}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EcosimError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
        sources.append((path, data))
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        for o in bad:
            errors.append(f"command line: {o!r} is not key=value")
        try:
            dl = OmegaConf.to_container(OmegaConf.from_dotlist([o for o in overrides if "=" in o]))
            sources.append(("command line", dl))
        except OmegaConfBaseException as e:
            errors.append(f"command line: {str(e).splitlines()[0]}")
    for where, data in sources:
        unknown = _unknown_keys(type(schema), data, "")
        errors += [f"{where}: {m}" for _, m in unknown]
        bad = {k for k, _ in unknown}
        try:
            _add_entries(cfg, type(schema), data)
        except OmegaConfBaseException as e:
            errors.append(f"{where}: {str(e).splitlines()[0]}")
            continue
        for key, value in _leaves(data):
            if any(key == b or key.startswith(b + ".") for b in bad):
                continue
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except OmegaConfBaseException as e:
                msg = str(e).splitlines()[0]
                errors.append(f"{where}: {key}: {msg} (got {value!r})")
    # Semantic checks run even after key or type errors, on what did load, so that one pass
    # reports every problem.
    obj = OmegaConf.to_object(cfg)
    problems = checks(obj) if checks else []
    where = f"{path}: " if path else ""
    errors += [where + p for p in problems]
    if errors:
        raise EcosimError("invalid config:\n  " + "\n  ".join(errors))
    return obj
