"""Typed configs from YAML + key=value overrides (OmegaConf structured configs), validated up
front: every problem is collected and reported at once, with the file, key path and what was
expected, never as a traceback from deep inside a library."""
from __future__ import annotations

import difflib
import os
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


def _known(schema, key: str) -> tuple[bool, str]:
    """Whether dotted ``key`` names a field of ``schema``; if not, a hint naming the bad part."""
    obj = schema
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not is_dataclass(obj):
            return True, ""  # inside a dict- or list-typed field: OmegaConf checks the type
        names = {f.name: f for f in fields(obj)}
        if part not in names:
            near = difflib.get_close_matches(part, names, n=1)
            where = ".".join(parts[:i]) or "the top level"
            hint = f"; did you mean {'.'.join(parts[:i] + near)!r}?" if near else \
                f"; expected one of {sorted(names)}"
            return False, f"unknown key {part!r} in {where}{hint}"
        obj = getattr(obj, part)
    return True, ""


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
        for key, value in _leaves(data):
            ok, hint = _known(schema, key)
            if not ok:
                errors.append(f"{where}: {key}: {hint}")
                continue
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except OmegaConfBaseException as e:
                msg = str(e).splitlines()[0]
                errors.append(f"{where}: {key}: {msg} (got {value!r})")
    if errors:
        raise EcosimError("invalid config:\n  " + "\n  ".join(errors))
    obj = OmegaConf.to_object(cfg)
    problems = checks(obj) if checks else []
    if problems:
        raise EcosimError("invalid config:\n  " + "\n  ".join(problems))
    return obj
