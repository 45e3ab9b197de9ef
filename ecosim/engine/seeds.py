"""Every random stream of a run, from one tree: a stream is named by the scenario (or base, or
ecosystem) seed and a path below it. Each path element is an int (used as is) or a str (the
CRC-32 of its UTF-8, as the engine has always hashed keys and purposes), and the stream is the
one numpy's ``SeedSequence([seed, *path])`` spawns, so that

    rng(seed, 7)                       == np.random.default_rng([seed, 7])
    rng(seed, "random topology")       == np.random.default_rng([seed, crc32(b"random topology")])
    seed(seed, key, generation, what)  == SeedSequence([seed, crc32(key), generation, crc32(what)])
                                          .generate_state(1)[0] % 2**31

(tests/test_seeds.py pins each stream the code drew before this module existed). numpy only:
the engine imports it, and so do the substrates; a torch generator is seeded with ``seed(...)``.

``offset`` keeps two arithmetic seeds that a path cannot reproduce and that measured results
stand on; a new stream should be a path, never arithmetic."""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["entropy", "rng", "seed", "word", "offset"]


def _element(x) -> int:
    if isinstance(x, str):
        return zlib.crc32(x.encode())
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0:
        return int(x)
    raise TypeError(f"a seed path element is a non-negative int or a str, not {x!r}")


def entropy(seed: int, *path) -> list[int]:
    """The SeedSequence entropy of stream ``path`` under ``seed``: [seed, *path] with each str
    element replaced by its CRC-32."""
    return [_element(seed), *(_element(p) for p in path)]


def rng(seed: int, *path) -> np.random.Generator:
    """numpy Generator of stream ``path`` under ``seed`` (no path: ``default_rng(seed)``)."""
    return np.random.default_rng(entropy(seed, *path))


def word(seed: int, *path) -> int:
    """The stream's first 32-bit state word, in [0, 2**32): the MLP study's replicate sub-seeds
    (``mlp._stream``) were drawn so. Anything new takes ``seed``."""
    return int(np.random.SeedSequence(entropy(seed, *path)).generate_state(1)[0])


def seed(seed: int, *path) -> int:
    """A 31-bit int seed for stream ``path`` under ``seed`` (for torch, or to hand to a function
    that takes a seed): ``word(seed, *path) % 2**31``."""
    return word(seed, *path) % 2**31


def offset(seed: int, k: int, scale: int = 1) -> int:
    """``seed * scale + k``: a LEGACY arithmetic stream, kept because measured results stand on
    it (a path would change their numbers): the world's fine-tuned teacher trains with
    ``offset(seed, 1, 1000)``, part i of an assembled training set is subsampled with
    ``offset(seed, i)``, replica i of ecosystem seed s has bases ``offset(base seed, i +
    MAX_REPLICAS * s)`` (runner's base offsets; ``bases_per_seed``) and the MLP study's
    different-init student ``offset(s, DIFFERENT_INIT)``. Neighbouring seeds share streams under
    it (seed s's part 1 is seed s+1's part 0): do not use it for anything new."""
    return seed * scale + k
