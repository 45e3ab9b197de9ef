"""docs/scenarios.md, generated: every key of a scenario YAML with its type, default, rule and
meaning, read from the composed schema (``schema.types()``), its one rules table
(``schema.rules()``) and the sources of the dataclasses (each field's comment; each section's
docstring). ``ecosim schema`` prints it; ``ecosim schema --out docs/scenarios.md`` writes it.
Torch-free: the substrates' config modules are loaded at call time, through the registry."""
from __future__ import annotations

import inspect
import io
import math
import tokenize
import types as pytypes
import typing
from dataclasses import dataclass, fields, is_dataclass
from functools import lru_cache

from ecosim.engine import registry, schema
from ecosim.engine.config import Choice, Range, unwrap as _unwrap

COMMAND = "ecosim schema --out docs/scenarios.md"


@dataclass
class Row:
    key: str        # dotted key path: lineages.NAME.student.rank, topology.edges[i].filter
    type: str       # in plain words
    default: str
    rule: str
    meaning: str


@dataclass
class Section:
    key: str        # "" for the top level
    intro: str
    rows: list[Row]


# ----------------------------------------------------------------- comments in the source
def _field_comments(cls: type) -> dict[str, str]:
    """{field: its comment} from ``cls``'s own source: the comment lines directly above a field
    (at the field's indentation), its trailing comment, and comment lines directly below it that
    are indented further (a trailing comment's continuation). {} when there is no source."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, IndentationError):
        return {}
    comments: dict[int, tuple[int, str]] = {}   # line: (column, text) of every comment
    code: set[int] = set()                      # lines with code on them
    fields_at: list[tuple[str, int, int, int]] = []  # (name, first line, last line, column)
    depth, body_col, start = 0, None, True
    for i, t in enumerate(toks):
        if t.type == tokenize.COMMENT:
            comments[t.start[0]] = (t.start[1], t.string.lstrip("#").strip())
            continue
        if t.type in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            if t.type == tokenize.INDENT:
                depth += 1
            elif t.type == tokenize.DEDENT:
                depth -= 1
            if t.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                start = True
            continue
        code.update(range(t.start[0], t.end[0] + 1))
        if start and depth == 1 and t.type == tokenize.NAME:
            body_col = t.start[1] if body_col is None else body_col
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if nxt is not None and nxt.type == tokenize.OP and nxt.string == ":":
                end = next(u.start[0] for u in toks[i:] if u.type == tokenize.NEWLINE)
                fields_at.append((t.string, t.start[0], end, t.start[1]))
        start = False
    out = {}
    for name, first, last, col in fields_at:
        above = []
        n = first - 1
        while n in comments and n not in code and comments[n][0] == col:
            above.insert(0, comments[n][1])
            n -= 1
        own = [comments[n][1] for n in range(first, last + 1) if n in comments]
        below = []
        n = last + 1
        while own and n in comments and n not in code and comments[n][0] > col:
            below.append(comments[n][1])
            n += 1
        text = ""
        for x in above + own + below:  # a word broken at a hyphen ("single-" / "digit") is joined
            text += ("" if not text or (text.endswith("-") and text[-2:-1].isalpha()) else " ") + x
        if text:
            out[name] = text
    return out


@lru_cache(maxsize=None)
def _comments(cls: type) -> dict[str, str]:
    return _field_comments(cls)


def meaning(cls: type, name: str) -> str:
    """The comment of field ``name`` in the source of the first class of ``cls``'s MRO that has one
    (a composed class has no source: its base's comment)."""
    for c in cls.__mro__:
        if c is object:
            continue
        text = _comments(c).get(name)
        if text:
            return text
    return ""


def docline(cls: type) -> str:
    """The first sentence of the first docstring in ``cls``'s MRO that someone wrote (not the
    signature dataclasses make up)."""
    for c in cls.__mro__:
        if c is object:
            continue
        doc = c.__dict__.get("__doc__")
        if not doc or any(doc.startswith(f"{k.__name__}(") for k in cls.__mro__):
            continue
        para = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
        cut = para.find(". ")
        return para if cut < 0 else para[: cut + 1]
    return ""


# ----------------------------------------------------------------- types, defaults, rules
def _section_name(cls: type) -> str:
    return cls.__name__.lstrip("_")


def type_words(tp, key_name: str = "str") -> str:
    """A type in plain words: int, optional float, list of str, mapping NAME -> section."""
    tp, opt = _unwrap(tp)
    pre = "optional " if opt else ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if is_dataclass(tp):
        return pre + "section"
    if origin is list:
        return pre + "list" + (f" of {type_words(args[0])}" if args else "")
    if origin is dict:
        if not args:
            return pre + "mapping"
        k = key_name if args[0] is str else type_words(args[0])
        v = args[1]
        return pre + f"mapping {k} -> " + ("section" if is_dataclass(v) else type_words(v))
    if tp is typing.Any:
        return pre + "any"
    if origin in (typing.Union, pytypes.UnionType):
        return pre + " or ".join(type_words(a) for a in args)
    return pre + getattr(tp, "__name__", str(tp))


def _value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '""' if v == "" else v
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def _num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        x = int(x)
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else str(x)


def rule_words(r) -> str:
    """A rule in words: ``0 <= x <= 1``, ``> 0``, ``one of: a, b``; a Range's why after it."""
    if r is None:
        return ""
    if isinstance(r, Choice):
        return "one of: " + ", ".join(_value(o) for o in r.options)
    if isinstance(r, Range):
        lo = None if r.lo is None else (_num(r.lo), "<" if r.lo_open else "<=")
        hi = None if r.hi is None or (isinstance(r.hi, float) and math.isinf(r.hi)) else \
            (_num(r.hi), "<" if r.hi_open else "<=")
        if lo and hi:
            s = f"{lo[0]} {lo[1]} x {hi[1]} {hi[0]}"
        elif lo:
            s = f"{'>' if r.lo_open else '>='} {lo[0]}"
        elif hi:
            s = f"{hi[1]} {hi[0]}"
        else:
            s = "any number"
        return s + (f" ({r.why})" if r.why else "")
    return str(r)


def _rules_of(cls: type, table: dict) -> dict:
    own: dict = {}
    for c in reversed(cls.__mro__):
        own.update(table.get(c, {}))
    return own


def _factories() -> dict[type, typing.Callable]:
    """A new entry of a mapping or list of sections: the factory a substrate declared for its
    class, else the class itself."""
    out = {}
    for cls, new in list(registry.slots().values()) + list(registry.sections().values()):
        out.setdefault(cls, new)
    return out


# ----------------------------------------------------------------- the walk
def sections() -> list[Section]:
    """Every section of the composed schema, depth first from the top level, with its rows."""
    scenario = schema.types()["Scenario"]
    table, new = schema.rules(), _factories()
    out: list[Section] = []

    def walk(key: str, obj, intro: str):
        cls = type(obj)
        rows: list[Row] = []
        sec = Section(key, intro, rows)
        out.append(sec)
        hints = typing.get_type_hints(cls)
        own = _rules_of(cls, table)
        later = []
        for f in fields(cls):
            path = f"{key}.{f.name}" if key else f.name
            tp = hints.get(f.name, f.type)
            base, opt = _unwrap(tp)
            origin, args = typing.get_origin(base), typing.get_args(base)
            v = getattr(obj, f.name)
            text = meaning(cls, f.name) or (docline(base) if is_dataclass(base) else "")
            r = own.get(f.name)
            rule = rule_words(r)
            if rule and origin is list:
                rule = "each " + rule
            if is_dataclass(base):
                sub = v if v is not None else base()
                rows.append(Row(path, type_words(tp), "null" if v is None else "", rule, text))
                later.append((path, sub, docline(type(sub)) or text))
            elif origin is dict and args and is_dataclass(args[1]):
                entry = new.get(args[1], args[1])()
                rows.append(Row(path, type_words(tp, "NAME"), _value(v), rule, text))
                later.append((f"{path}.NAME", entry, docline(args[1]) or text))
            elif origin is list and args and is_dataclass(args[0]):
                entry = new.get(args[0], args[0])()
                rows.append(Row(path, type_words(tp), _value(v), rule, text))
                later.append((f"{path}[i]", entry, docline(args[0]) or text))
            else:
                d = "required" if v == "???" else _value(v)
                rows.append(Row(path, type_words(tp), d, rule, text))
        for path, sub, why in later:
            walk(path, sub, why)

    walk("", scenario(), docline(scenario))
    return out


def keys() -> dict[str, str]:
    """{key path: type in words} for every documented key."""
    return {r.key: r.type for s in sections() for r in s.rows}


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    lines = [
        "# Scenario keys",
        "",
        f"Generated by `{COMMAND}` from the schema (`ecosim/engine/schema.py` and the substrates' "
        "config dataclasses) and its rules table: do not edit it by hand.",
        "",
        "Every key of a scenario YAML, with its type, default, allowed values and meaning. `NAME` "
        "stands for a name you choose (an entry of `bases`, `traits` or `lineages`); `[i]` for an "
        "entry of a list. A mapping of sections starts empty; the defaults shown for `NAME` are "
        "those of a new entry. A rule on a list applies to each element; null (an unset optional) "
        "always passes.",
        "",
    ]
    for s in sections():
        lines.append(f"## `{s.key}`" if s.key else "## Top level")
        lines.append("")
        if s.intro:
            lines += [s.intro, ""]
        lines.append("| key | type | default | rule | meaning |")
        lines.append("|---|---|---|---|---|")
        for r in s.rows:
            default = f"`{r.default}`" if r.default else "see below"
            lines.append("| " + " | ".join([f"`{r.key}`", _cell(r.type), _cell(default), _cell(r.rule),
                                             _cell(r.meaning)]) + " |")
        lines.append("")
    return "\n".join(lines)
