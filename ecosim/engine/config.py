"""Typed configs from YAML + key=value overrides (OmegaConf structured configs), validated up
front: every problem is collected and reported at once, with the file, key path and what was
expected, never as a traceback from deep inside a library."""
from __future__ import annotations

import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, fields, is_dataclass

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ecosim.errors import EcosimError


def leaves(d, prefix=""):
    """(dotted key, value) for every leaf of a nested dict; lists are leaves, and so is a mapping
    whose own keys are dotted paths (a sweep's grid: {data.real_share: [...]})."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not any("." in str(x) for x in v):
            yield from leaves(v, key + ".")
        else:
            yield key, v


# ----------------------------------------------------------------- field rules
# The rules themselves (every numeric range and every choice of a scenario) are one table,
# ``engine.schema.rules()``; these are their kinds and the one checker that applies them.
@dataclass(frozen=True)
class Range:
    """lo <= value <= hi (``lo_open``: lo < value; ``hi_open``: value < hi); None: unbounded.
    ``why``: the reason for the upper limit (a size large enough to be a mistake), shown with it."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def problem(self, v) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None  # a wrong type is reported where the value is loaded
        if isinstance(v, float) and math.isnan(v):
            return "must be a number (got nan)"
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return f"must be {'>' if self.lo_open else '>='} {self.lo} (got {v})"
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            why = f": {self.why}" if self.why else ""
            return f"must be {'<' if self.hi_open else '<='} {self.hi} (got {v}){why}"
        return None


@dataclass(frozen=True)
class Choice:
    """One of ``options``."""
    options: tuple

    def problem(self, v) -> str | None:
        if v in self.options:
            return None
        near = difflib.get_close_matches(str(v), [str(o) for o in self.options], n=1)
        return (f"{v!r} is not one of {list(self.options)}" + (f"; did you mean {near[0]!r}?" if near else ""))


# The ranges many sections share (the substrates' rules use them too). Upper limits refuse sizes
# large enough to be a typo (an extra zero or three) before anything hangs, and are generous for
# real GPU studies: the paper (Cloud et al., 2025) trains each student on 10,000 examples drawn
# from 30,000 prompts, so prompts and train_size allow 1,000,000 (33x and 100x that); a million
# optimiser steps, batches of 65,536 and LoRA rank 4,096 (the width of a 7B model) are all beyond
# any study this engine has run.
SEED = Range(0, 2**32 - 1, why="seeds are unsigned 32-bit integers")
SHARE = Range(0, 1)                      # a probability or a share of a whole
STEPS = Range(1, 1_000_000, why="a million optimiser steps is beyond any study; a typo?")
BATCH = Range(1, 65_536, why="a typo? batches that large do not fit in any GPU's memory")
LR = Range(0, 1, lo_open=True, why="learning rates above 1 diverge")
EXAMPLES = Range(1, 1_000_000,
                 why="far beyond the paper's sizes (10,000 examples per student, 30,000 prompts); a typo?")


def check_fields(obj, rules: dict, where: str = "") -> list[str]:
    """``key.path: problem`` for every field of dataclass ``obj`` (and of the dataclasses, dicts
    and lists of dataclasses inside it) that breaks its rule. ``rules``: {dataclass type: {field
    name: Range | Choice}}; a subclass has its bases' rules too. None (an unset optional) passes."""
    out = []
    own: dict = {}
    for cls in reversed(type(obj).__mro__):
        own.update(rules.get(cls, {}))
    for f in fields(obj):
        v = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        rule = own.get(f.name)
        if rule is not None and v is not None:
            if isinstance(v, list):
                out += [f"{key}[{i}]: {m}" for i, x in enumerate(v) if (m := rule.problem(x))]
            elif (m := rule.problem(v)):
                out.append(f"{key}: {m}")
        if is_dataclass(v):
            out += check_fields(v, rules, key)
        elif isinstance(v, dict):
            out += [m for k, x in v.items() if is_dataclass(x) for m in check_fields(x, rules, f"{key}.{k}")]
        elif isinstance(v, list):
            out += [m for i, x in enumerate(v) if is_dataclass(x) for m in check_fields(x, rules, f"{key}[{i}]")]
    return out


# ----------------------------------------------------------------- YAML
def _mark(m) -> str:
    return f"line {m.line + 1}, column {m.column + 1}"


def read_yaml(path: str):
    """The file's data (OmegaConf's YAML reading: ``1e-3`` is a float), after PyYAML has parsed
    it once to name the line and column of a syntax error and every duplicate key."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise EcosimError(f"{path}: not readable YAML: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise EcosimError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        what = e.problem or e.context or "syntax error"
        if e.context and e.problem:
            what = f"{e.problem} ({e.context}" + (f" at {_mark(e.context_mark)}" if e.context_mark else "") + ")"
        raise EcosimError(f"{path}: {_mark(m) + ': ' if m else ''}not readable YAML: {what}") from None
    except yaml.YAMLError as e:
        raise EcosimError(f"{path}: not readable YAML: {str(e).splitlines()[0]}") from None
    dups = []

    def walk(node, at):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                key = f"{at}.{name}" if at else str(name)
                if isinstance(k, yaml.ScalarNode) and name in seen:
                    dups.append(f"{path}: line {k.start_mark.line + 1}: duplicate key {key!r} "
                                f"(first given at line {seen[name]})")
                else:
                    seen[name] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, f"{at}[{i}]")

    walk(root, "")
    if dups:
        raise EcosimError("invalid config:\n  " + "\n  ".join(dups))
    try:
        return OmegaConf.to_container(OmegaConf.load(path))
    except Exception as e:  # yaml.YAMLError and friends that PyYAML's safe reading let through
        raise EcosimError(f"{path}: not readable YAML: {str(e).splitlines()[0]}") from None


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
    inner, optional = unwrap(tp)
    return _schema_of(inner) if optional else (None, None)


def unwrap(tp) -> tuple[object, bool]:
    """(type, optional): ``X | None`` -> (X, True)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return tp, False


def unknown_keys(cls, data: dict, where: str) -> list[tuple[str, str]]:
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
        if kind == "list" and isinstance(v, dict):
            out.append((key, f"{key}: expected a list (- item per line, or [...]), got a mapping"))
        elif kind in ("dc", "dict") and isinstance(v, list):
            out.append((key, f"{key}: expected a mapping (key: value), got a list"))
        elif kind == "dc" and isinstance(v, dict):
            out += unknown_keys(sub, v, key)
        elif kind == "dict" and isinstance(v, dict):
            for name, item in v.items():
                if isinstance(item, dict):
                    out += unknown_keys(sub, item, f"{key}.{name}")
        elif kind == "list" and isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    out += [(key, m) for _, m in unknown_keys(sub, item, f"{key}[{i}]")]
    return out


def _add_entries(node, cls, data: dict) -> None:
    """Create the named entries of dict[str, dataclass] fields (with their defaults) before
    leaf-by-leaf updates, so that ``lineages.new.base=x`` makes a new lineage."""
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        kind, sub = _schema_of(hints.get(k))
        if not isinstance(v, dict):
            continue
        if kind is None and node.get(k) is None and typing.get_origin(unwrap(hints.get(k))[0]) is dict:
            node[k] = {}  # an optional plain mapping left at None: set keys make it
        elif kind == "dc":
            if node.get(k) is None:  # an optional section left at None: set keys make it (defaults first)
                node[k] = OmegaConf.structured(sub())
            _add_entries(node[k], sub, v)
        elif kind == "dict":
            for name, item in v.items():
                if name not in node[k]:
                    node[k][name] = OmegaConf.structured(sub())
                if isinstance(item, dict):
                    _add_entries(node[k][name], sub, item)


def _real_bases(data: dict) -> bool:
    """Whether a scenario (``bases``) or transmit config (``base``) names a real model."""
    b = data.get("bases")
    bases = list(b.values()) if isinstance(b, dict) else [data.get("base")]
    return any(isinstance(x, dict) and x.get("model") for x in bases)


def upgrade(data: dict) -> dict:
    """A config written by an older ecosim, in today's keys. Two old keys became
    ``teacher.task_share`` (the share of channel tasks in a fine-tuned teacher's examples):
    - ``teacher.number_share`` (world bases; 0, the numbers default, is dropped);
    - ``text.teacher_task_share`` (real bases only; the world ignored it). 0.5, its old default,
      is today's real-model default and is dropped, so an old run compares equal to a config that
      leaves the share unset."""
    if not isinstance(data, dict):
        return data
    t = data.get("teacher")
    t = dict(t) if isinstance(t, dict) else None
    if t is not None and "number_share" in t:
        v = t.pop("number_share")
        if v and "task_share" not in t:
            t["task_share"] = v
        data = {**data, "teacher": t}
    tx = data.get("text")
    if isinstance(tx, dict) and "teacher_task_share" in tx:
        tx = dict(tx)
        v = tx.pop("teacher_task_share")
        data = {**data, "text": tx}
        if v != 0.5 and _real_bases(data) and t is not None and t.get("task_share") is None:
            data["teacher"] = {**t, "task_share": v}
    return data


def load_config(schema, path: str | None = None, overrides=(), checks=None):
    """``schema``: a dataclass instance holding the defaults. Returns a validated instance.

    ``checks(cfg) -> list[str]`` adds semantic problems (choices, ranges)."""
    errors: list[str] = []
    cfg = OmegaConf.structured(schema)
    sources = []
    if path is not None:
        if not os.path.isfile(path):
            raise EcosimError(f"{path}: config file not found")
        data = read_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EcosimError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
        sources.append((path, upgrade(data)))
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
        unknown = unknown_keys(type(schema), data, "")
        errors += [f"{where}: {m}" for _, m in unknown]
        bad = {k for k, _ in unknown}
        try:
            _add_entries(cfg, type(schema), data)
        except OmegaConfBaseException as e:
            errors.append(f"{where}: {str(e).splitlines()[0]}")
            continue
        for key, value in leaves(data):
            if any(key == b or key.startswith(b + ".") for b in bad):
                continue
            if isinstance(value, bool) and isinstance(OmegaConf.select(cfg, key, default=None), str):
                value = "on" if value else "off"  # YAML reads a bare off/on (no/yes) as a boolean
            try:
                OmegaConf.update(cfg, key, value, merge=True)
            except Exception as e:  # OmegaConf's errors, and ValueError for a mapping where a list goes
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                errors.append(f"{where}: {key}: {msg} (got {value!r})")
    # Semantic checks run even after key or type errors, on what did load, so that one pass
    # reports every problem; not when a required value is missing (there is no object to check).
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        where = path or "command line"
        errors += [f"{where}: {k}: required, and not given" for k in missing]
        raise EcosimError("invalid config:\n  " + "\n  ".join(errors))
    obj = OmegaConf.to_object(cfg)
    problems = checks(obj) if checks else []
    where = f"{path}: " if path else ""
    errors += [where + p for p in problems]
    if errors:
        raise EcosimError("invalid config:\n  " + "\n  ".join(errors))
    return obj
