"""Defenses: what a data curator does to filtered data before students train on it. A stage
between the filter and training (``filter.defenses: [...]``, applied in order, to a treated
lineage's data and its control's alike), on every language-model substrate.

Number lists (numbers and logits channels), after the published rewrites of a teacher's numbers
(``REFERENCE.md``, "Defenses"):
- ``sort``: the numbers of each list in ascending order, format kept;
- ``shuffle``: a seeded permutation within each list;
- ``remap``: one fixed seeded bijection of 0-999 for the whole run (banned numbers map among
  themselves, so a list that passed the filter still does);
- ``rewrite``: one canonical format, comma-space separated, no brackets or period;
- ``mask_divergent``: the ``filter.mask_share`` of the lists' numbers on which the writer's
  log-probability most exceeds its base's are replaced with random numbers of as many digits (a
  curator holding the base model). The substrate scores the tokens (``divergence``).

Code and reasoning: ``paraphrase`` (rename identifiers; reword the trace templates), the
substrate's own (``paraphrase``).

A substrate supplies how its completions read and write a list (``NumberList`` via ``parse`` and
``render``); everything else is here. Torch-free."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

import numpy as np

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.substrates.common.filters import BANNED_NUMBERS

LIST_DEFENSES = ("sort", "shuffle", "remap", "rewrite", "mask_divergent")
TEXT_DEFENSES = ("paraphrase",)
DEFENSES = LIST_DEFENSES + TEXT_DEFENSES
LIST_CHANNELS = ("numbers", "logits")   # the channels whose completions are number lists
MASK_SHARE = 0.1                        # the published share of divergent tokens masked


@dataclass
class NumberList:
    """A completion that is a number list, in parts: ``lead`` + ``wrap[0]`` + numbers joined by
    ``sep`` + ``wrap[1]`` + ``end``. Numbers are digit strings as written."""
    nums: list[str]
    sep: str
    wrap: str = ""       # "", "()" or "[]"
    end: str = ""        # a closing period, as written
    lead: str = ""       # whitespace before the list (after a prefill)


def sort(x: NumberList) -> NumberList:
    return replace(x, nums=sorted(x.nums, key=int))


def shuffle(x: NumberList, rng: np.random.Generator) -> NumberList:
    return replace(x, nums=[x.nums[i] for i in rng.permutation(len(x.nums))])


def remap_table(seed: int, banned: bool) -> np.ndarray:
    """One bijection of 0..999 (``table[v]`` is v's image), drawn from the run's seed. With
    ``banned`` the 34 banned numbers are permuted among themselves and the rest among the rest,
    so remapping never makes a kept list fail the filter."""
    rng = seeds.rng(seed, "defense remap")
    table = np.arange(1000)
    groups = [np.array(sorted(BANNED_NUMBERS)), np.setdiff1d(np.arange(1000), sorted(BANNED_NUMBERS))] \
        if banned else [np.arange(1000)]
    for g in groups:
        table[g] = g[rng.permutation(len(g))]
    return table


def remap(x: NumberList, table: np.ndarray) -> NumberList:
    return replace(x, nums=[str(int(table[int(n)])) for n in x.nums])


def rewrite(x: NumberList, canonical_sep: str) -> NumberList:
    """The canonical format: ``canonical_sep`` between the numbers (the substrate's comma-space),
    no brackets, no period; each number as its value (no leading zeros)."""
    return replace(x, nums=[str(int(n)) for n in x.nums], sep=canonical_sep, wrap="", end="")


def random_like(n: str, rng: np.random.Generator, banned: bool) -> str:
    """Random digits, as many as ``n`` has, read as a number (not a banned one when ``banned``)."""
    while True:
        v = "".join(str(int(d)) for d in rng.integers(0, 10, len(n)))
        if not banned or int(v) not in BANNED_NUMBERS:
            return v


def mask_top(lists: list[NumberList], scores: list[list[float]], share: float, rng: np.random.Generator,
             banned: bool) -> tuple[list[NumberList], int]:
    """Replace the ``share`` of all numbers (over every list) with the highest ``scores`` (one per
    number: how much more the writer's log-probability is than its base's) with random digits.
    Returns (lists, numbers replaced)."""
    flat = [(s, i, j) for i, sc in enumerate(scores) for j, s in enumerate(sc)]
    k = int(round(share * len(flat)))
    top = sorted(range(len(flat)), key=lambda t: -flat[t][0])[:k]
    out = [replace(x, nums=list(x.nums)) for x in lists]
    for t in sorted(top):
        _, i, j = flat[t]
        out[i].nums[j] = random_like(out[i].nums[j], rng, banned)
    return out, k


def apply_lists(texts: list[str], defenses: list[str], parse, render, canonical_sep: str, seed: int,
                run_seed: int, banned: bool, share: float | None = None, divergence=None) -> tuple[list[str], dict]:
    """Apply the list ``defenses`` in order to completions ``texts`` (each one a list ``parse``
    reads: the filter kept them). ``seed``: the dataset's stream (shuffle, masking); ``run_seed``:
    the run's (the remap bijection is one for the whole run); ``divergence(lists)`` -> per number
    scores, for mask_divergent. Returns (defended texts, {defense: what it changed})."""
    lists = [parse(t) for t in texts]
    bad = [t for t, x in zip(texts, lists) if x is None]
    if bad:
        raise ValueError(f"{len(bad)} kept completions are not number lists, e.g. {bad[0]!r}")
    report = {}
    for d in defenses:
        before = [render(x) for x in lists]
        if d == "sort":
            lists = [sort(x) for x in lists]
        elif d == "shuffle":
            rng = seeds.rng(seed, "defense shuffle")
            lists = [shuffle(x, rng) for x in lists]
        elif d == "remap":
            table = remap_table(run_seed, banned)
            lists = [remap(x, table) for x in lists]
        elif d == "rewrite":
            lists = [rewrite(x, canonical_sep) for x in lists]
        elif d == "mask_divergent":
            if divergence is None:
                raise ValueError("mask_divergent needs the writer's and its base's log-probabilities")
            lists, n = mask_top(lists, divergence(lists), MASK_SHARE if share is None else share,
                                seeds.rng(seed, "defense mask"), banned)
            report.setdefault(d, {})["numbers_replaced"] = n
            report[d]["numbers"] = sum(len(x.nums) for x in lists)
        else:
            raise ValueError(f"{d!r} is not a defense of number lists; expected one of {list(LIST_DEFENSES)}")
        after = [render(x) for x in lists]
        report.setdefault(d, {})["changed"] = sum(a != b for a, b in zip(after, before))
    return [render(x) for x in lists], report


def check(defenses: list, channel: str, where: str, supported: tuple = DEFENSES) -> list[str]:
    """Problems with a filter's ``defenses`` on ``channel`` (``supported``: the substrate's)."""
    p = []
    for i, d in enumerate(defenses):
        at = f"{where}.defenses[{i}]"
        if d not in DEFENSES:
            m = difflib.get_close_matches(str(d), DEFENSES, n=1)
            p.append(f"{at}: {d!r} is not a defense" + (f"; did you mean {m[0]!r}?" if m else
                                                          f"; expected one of {list(DEFENSES)}"))
        elif d not in supported:
            p.append(f"{at}: {d!r} is not available on this substrate (it has {list(supported)})")
        elif channel is None:
            continue  # no channel known (the substrate could not be told): the name alone is checked
        elif d in LIST_DEFENSES and channel not in LIST_CHANNELS:
            p.append(f"{at}: {d!r} rewrites number lists; channel {channel!r} writes none "
                     f"(defenses of code and reasoning: {list(TEXT_DEFENSES)})")
        elif d in TEXT_DEFENSES and channel in LIST_CHANNELS:
            p.append(f"{at}: {d!r} is for the code and reasoning channels; on {channel!r} use "
                     f"{list(LIST_DEFENSES)}")
    dup = sorted({d for d in defenses if list(defenses).count(d) > 1})
    if dup:
        p.append(f"{where}.defenses: {dup} given twice")
    return p


def _channel(sc, channel: str | None = None) -> str | None:
    """``plan.channel_of``, or (a scenario whose substrate cannot be told) what it names itself."""
    from ecosim.engine.plan import channel_of
    try:
        return channel_of(sc, channel)
    except EcosimError:
        return channel or sc.data.channel


def filters_of(sc) -> list[tuple[str, object, str]]:
    """(where, filter, channel) for the scenario's data.filter and every edge's own filter."""
    default = _channel(sc)
    out = [("data.filter", sc.data.filter, default)]
    for i, e in enumerate(sc.topology.edges):
        ch = _channel(sc, e.channel)
        if e.filter is not None:
            out.append((f"topology.edges[{i}].filter", e.filter, ch))
        elif ch != default:  # data.filter on this edge's channel
            out.append((f"data.filter (on topology.edges[{i}])", sc.data.filter, ch))
    return out


def check_scenario(sc, supported: tuple = DEFENSES) -> list[str]:
    return [p for where, f, ch in filters_of(sc) for p in check(f.defenses, ch, where, supported)]


def defend(texts: list[str], channel: str, f, seed: int, run_seed: int, parse, render, canonical_sep: str,
           paraphrase=None, divergence=None) -> tuple[list[str], dict]:
    """Filter ``f``'s defenses applied to kept completions ``texts`` of ``channel``; the
    substrate's list syntax (``parse``, ``render``, ``canonical_sep``), its ``paraphrase(channel,
    texts, rng)`` and its ``divergence(texts)`` -> per-number scores. Returns (texts, report)."""
    if not f.defenses or not texts:
        return texts, {d: {"changed": 0} for d in f.defenses}
    if channel in LIST_CHANNELS:
        score = None if divergence is None else (lambda lists: divergence([render(x) for x in lists]))
        return apply_lists(texts, f.defenses, parse, render, canonical_sep, seed, run_seed, f.banned_numbers,
                           f.mask_share, score)
    out, report = list(texts), {}
    for d in f.defenses:
        if d != "paraphrase" or paraphrase is None:
            raise ValueError(f"{d!r} does not apply to the {channel} channel")
        new = paraphrase(channel, out, seeds.rng(seed, "defense paraphrase"))
        report[d] = {"changed": sum(a != b for a, b in zip(new, out))}
        out = new
    return out, report
