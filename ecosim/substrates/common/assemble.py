"""Training sets from parents' datasets, shared by every substrate: how many examples each part
gives (``allocate``) and the set itself (``assemble``)."""
from __future__ import annotations

from ecosim.engine import seeds
from ecosim.substrates.common.filters import subsample


def allocate(lens: list[int], weights: list[float], size: int) -> list[int]:
    """How many examples to take from each part: min(size, all there is) in all, in proportion to
    ``weights``, each at most its part's length; what a short part cannot give goes to the others
    (so that two sets asked for the same size get exactly that size)."""
    counts = [0] * len(lens)
    left = min(size, sum(lens))
    while left > 0:
        room = [i for i in range(len(lens)) if counts[i] < lens[i]]
        tw = sum(weights[i] for i in room)
        ideal = {i: left * weights[i] / tw for i in room}
        give = {i: min(lens[i] - counts[i], int(ideal[i])) for i in room}
        if not any(give.values()):  # every share is below one example: the largest shares get one
            for i in sorted(room, key=lambda i: -ideal[i])[:left]:
                counts[i] += 1
            break
        for i, k in give.items():
            counts[i] += k
        left -= sum(give.values())
    return counts


def _take(part: list, k: int, seed: int, i: int) -> list:
    return subsample(part, k, seed=seeds.offset(seed, i))


def _join(pieces: list[list]) -> list:
    return [e for p in pieces for e in p]


def assemble(parts: list[tuple[object, float]], sc, seed: int, size: int | None = None, *,
             cap: int | None = None, real=None, length=len, take=_take, join=_join) -> tuple[object, dict]:
    """A student's training set from its parents' datasets ``parts`` [(dataset, edge weight)]:
    ``cap`` examples (None: ``data.train_size``), or everything under ``data.regime: accumulate``,
    at most what the parents kept and at most ``size`` (the engine's cap that matches a treated
    lineage and its control), taken from each part in proportion to its weight (``allocate``).
    ``real(rng, n)``, where a substrate has real data to mix in, gives ``data.real_share`` of the
    set (under ``accumulate``: on top). ``length``, ``take(part, k, seed, i)`` (default: ``k`` of
    part ``i``'s examples, ``filters.subsample``) and ``join(pieces)`` (default: one list) are how
    a dataset is measured, drawn from and put together. Returns (examples, train_set)."""
    d = sc.data
    lens = [length(p) for p, _ in parts]
    pool = sum(lens)
    target = pool if d.regime == "accumulate" else min(d.train_size if cap is None else cap, pool)
    if size is not None:
        target = min(target, size)
    n_real = int(round(target * d.real_share)) if real is not None else 0
    if d.regime == "accumulate":  # everything the parents wrote (or the cap), real data on top
        counts = allocate(lens, [float(n) for n in lens], target)
    else:
        counts = allocate(lens, [w for _, w in parts], target - n_real)
    out = join([take(p, k, seed, i) for i, ((p, _), k) in enumerate(zip(parts, counts))])
    if n_real:
        out += real(seeds.rng(seed, 23), n_real)
    n = length(out)
    return out, {"size": n, "real": n_real, "real_share": n_real / max(n, 1), "counts": counts}
