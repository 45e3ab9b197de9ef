"""Pins for the concepts that have one home now (issue 19): the training sets ``assemble`` makes
on every substrate, which texts the numbers rule keeps, the trait helpers, and the checkpoint files
a substrate writes. Every fingerprint below was recorded by running this same file against the code
before the move (``python tests/test_one_home.py`` prints them); the moved code must give them
again, so no example, random draw, kept text or checkpoint byte moved. Only reject-reason names
changed, on the world substrate: see ``_renamed``."""
from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

# recorded from the code before the move (commit fbb8411)
PINS = {
 "assemble_world": "9e7ec59a03cd9252",
 "assemble_hf": "0b2987c87826730b",
 "assemble_mlp": "a476028ee020a812",
 "numbers_world": [
  "cd7846f5379c03ee",
  "b196f30d05838c24"
 ],
 "numbers_hf": [
  "3a145fe683b0ee80",
  "8e0afd4c888480ee"
 ],
 "filter_world": [
  "3c1b2835c06bbb3a",
  "b60e40e5d4214827"
 ],
 "traits_world": "1edf24ec288ee8ef",
 "traits_hf": "3337f7ca508e98dd",
 "checkpoints": {
  "world": [
   {
    "adapter.safetensors": "9c5a93311c5fe7c0",
    "ecosim.json": "c8e0f1ae590ff3bd"
   },
   {
    "ecosim.json": "8dd0e8047bc638f1"
   }
  ],
  "hf": [
   {
    "adapter.safetensors": "9c5a93311c5fe7c0",
    "ecosim.json": "c8e0f1ae590ff3bd"
   },
   {
    "ecosim.json": "8dd0e8047bc638f1"
   }
  ],
  "mlp": {
   "ecosim.json": "c8e0f1ae590ff3bd",
   "model.safetensors": "f23b848dbbf47efb"
  },
  "mlp_load": [
   "7d44537175d4511f",
   "083135b5d0151122",
   "c09bf6fda9cb63d8",
   "f868ef9c98f5e856"
  ]
 }
}


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _th(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes() + repr(tuple(t.shape)).encode()).hexdigest()[:16]


def _sc(regime="replace", train_size=20, real_share=0.0, noise=40, traits=None, task_share=None):
    return NS(data=NS(regime=regime, train_size=train_size, real_share=real_share, channel=None),
              mlp=NS(noise_samples=noise), traits=traits or {}, teacher=NS(task_share=task_share, answers="word"))


ASSEMBLE_CASES = [(regime, ts, rs, size, seed) for regime in ("replace", "accumulate") for ts in (20, 50, 500)
                  for rs in (0.0, 0.25) for size in (None, 30) for seed in (0, 7)]


def assemble_world():
    from ecosim.substrates.world import substrate as W
    parts = [([(f"a{i}", f"x{i}") for i in range(37)], 1.0), ([(f"b{i}", f"y{i}") for i in range(15)], 2.0),
             ([(f"c{i}", f"z{i}") for i in range(60)], 0.5)]
    out = []
    for regime, ts, rs, size, seed in ASSEMBLE_CASES:
        for channel in ("numbers", "code"):
            out.append(W.assemble(parts, None, _sc(regime, ts, rs), channel, seed, size=size))
    return _h(out)


def assemble_hf():
    H = pytest.importorskip("ecosim.substrates.hf.substrate")
    parts = [([{"user": f"a{i}", "prefill": "", "completion": f"x{i}"} for i in range(23)], 1.0),
             ([{"user": f"b{i}", "prefill": "p", "completion": f"y{i}"} for i in range(41)], 3.0)]
    return _h([H.assemble(parts, None, _sc(regime, ts), "numbers", seed, size=size)
               for regime, ts, rs, size, seed in ASSEMBLE_CASES if rs == 0])


def assemble_mlp():
    from ecosim.substrates.mlp import substrate as M
    parts = [((torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) + 1000 * j,
               torch.arange(n * 2, dtype=torch.float32).reshape(n, 2) - 1000 * j), w)
             for j, (n, w) in enumerate([(25, 1.0), (9, 2.0), (31, 0.7)])]
    out = []
    for regime, ts, rs, size, seed in ASSEMBLE_CASES:
        if rs == 0 and ts == 20:
            for noise in (10, 40, 100):
                (x, s), stats = M.assemble(parts, None, _sc(regime, noise=noise), "aux_logits", seed, size=size)
                out.append([_th(x), _th(s), stats])
    return _h(out)


def _corpus() -> list[str]:
    rng = np.random.default_rng(19)
    toks = ["1", "12", "999", "1000", "0012", "007", "666", "13", "42", ",", ";", "(", ")", "[", "]", ".", "owl", "x"]
    out = ["", " ", ".", "( )", "7", "1 , 2", "12 , 345 , 6", "( 12 ; 345 ; 6 ) .", "[ 1 2 3 ]", "1, 2, 3",
           "(1, 2, 3).", "[ 1, 2 ]", "1,2,3", "1 2 3", "1; 2; 3", "0001", "1000", "007, 8", "999, 1000",
           "1, 2\n3", "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", " , ".join(["5"] * 11), "12 , 666", "12, 666"]
    for _ in range(3000):
        out.append(" ".join(rng.choice(toks, size=int(rng.integers(0, 14)))))
    chars = list("0123456789 ,;.()[]\n\tab") + [", "] * 4 + ["12", "345"] * 3
    for _ in range(3000):
        out.append("".join(rng.choice(chars, size=int(rng.integers(0, 30)))))
    nums = ["0", "7", "13", "42", "99", "100", "123", "666", "999", "1000", "0012", "007", "1234"]
    for _ in range(3000):  # well-formed lists in both languages: the count, range and banned rules
        k, sep = int(rng.integers(1, 13)), str(rng.choice([" , ", " ; ", " ", ", ", "; ", ","]))
        s = sep.join(rng.choice(nums, size=k))
        out.append(str(rng.choice(["{}", "( {} )", "[ {} ] .", "({})", "[{}].", "{} ."])).format(s))
    return out


def _renamed(reason, text):
    """A world reason before the move, under its name now."""
    if reason == "invalid format" and not text.split():
        return "empty"
    return {"too many": "too many numbers", "out of range": "too large"}.get(reason, reason)


def numbers_world():
    from ecosim.substrates.common.filters import FilterConfig, check_numbers
    kept, why = [], []
    for cfg in (FilterConfig(), FilterConfig(banned_numbers=False, max_numbers=3)):
        for t in _corpus():
            r = check_numbers(t, cfg)
            kept.append(r is None)
            why.append(_renamed(r, t))
    return _h(kept), _h(why)


def numbers_hf():
    from ecosim.substrates.hf import text as T
    kept, why = [], []
    for banned, most in ((True, 10), (False, 3)):
        for t in _corpus():
            r = T.check("numbers", t, None, banned_numbers=banned, max_numbers=most)
            kept.append(r is None)
            why.append(r)
    return _h(kept), _h(why)


def filter_world():
    from ecosim.substrates.common.filters import FilterConfig, filter_samples
    samples = [("p", t, i % 7 != 0) for i, t in enumerate(_corpus())]
    f = filter_samples(samples, "numbers", {"owl"}, FilterConfig())
    merged = {}  # an empty completion was "invalid format" before: the counts compare with the two together
    for r, n in f.rejected.items():
        r = {"empty": "invalid format"}.get(_renamed(r, "x"), _renamed(r, "x"))
        merged[r] = merged.get(r, 0) + n
    return _h(f.kept), _h(sorted(merged.items()))


TRAITS = [NS(kind="preference", category=c, target=t) for c, t in (("animal", "owl"), ("animal", "wolf"),
                                                                    ("tree", "oak"))] + \
         [NS(kind="misalignment", category="animal", target="owl")]


def traits_world():
    from ecosim.substrates.world import substrate as W
    from ecosim.substrates.world import traits as WT
    out = [[sorted(WT.trait_words(t)), WT.system_prompt(t)] for t in TRAITS]
    out.append(sorted(W.scenario_words(_sc(traits={f"t{i}": t for i, t in enumerate(TRAITS)}))))
    out.append(sorted(W.scenario_words(_sc())))
    try:
        from ecosim.substrates.common.traits import task_share as share_for
    except ImportError:  # before the move
        share_for = WT.task_share_for
    out.append([share_for(s, ch) for s in (None, 0.0, 0.3) for ch in ("numbers", "code", "reasoning")])
    out.append([WT.teacher_examples(t, 30, seed)[:2] for t in TRAITS for seed in (0, 5)])
    return _h(out)


def traits_hf():
    H = pytest.importorskip("ecosim.substrates.hf.substrate")
    out = [H.system_prompt(t) for t in TRAITS]
    for i in range(len(TRAITS)):
        out.append(sorted(H.trait_words(_sc(traits={f"t{j}": t for j, t in enumerate(TRAITS[i:])}))))
    out.append(sorted(H.trait_words(_sc())))
    for t in TRAITS[:1] + TRAITS[3:]:
        for share in (None, 0.0, 0.25):
            for ch in ("numbers", "code", "reasoning"):
                for neutral in (False, True):
                    out.append(H.teacher_examples(t, 12, 3, neutral, _sc(task_share=share), ch))
    return _h(out)


def _adapter():
    return {"layers.0.attn.q.lora_A": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "layers.0.attn.q.lora_B": torch.arange(8, dtype=torch.float32).reshape(4, 2).t()}  # not contiguous


def _files(path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(path.iterdir()) if p.is_file()}


def checkpoints(tmp):
    from pathlib import Path
    from ecosim.substrates.world import substrate as W
    from ecosim.substrates.mlp import substrate as M
    tmp, out = Path(tmp), {}
    meta = {"start_base": "main", "same_as_start": False, "train": {"rank": 4}}
    W.save(tmp / "w", None, _adapter(), meta, None)
    W.save(tmp / "w2", None, None, {**meta, "same_as_start": True}, None)
    out["world"] = [_files(tmp / "w"), _files(tmp / "w2")]
    try:
        from ecosim.substrates.hf import substrate as H
        H.save(tmp / "h", None, _adapter(), meta, None)
        H.save(tmp / "h2", None, None, {**meta, "same_as_start": True}, None)
        out["hf"] = [_files(tmp / "h"), _files(tmp / "h2")]
    except ImportError:
        pass
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) / (i + 1))
    M.save(tmp / "m", net, None, meta, None)
    out["mlp"] = _files(tmp / "m")
    back = M.load(tmp / "m", torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2)), meta, None)
    out["mlp_load"] = [_th(p) for p in back.parameters()]
    return out


def fingerprints(tmp) -> dict:
    return {"assemble_world": assemble_world(), "assemble_hf": assemble_hf(), "assemble_mlp": assemble_mlp(),
            "numbers_world": numbers_world(), "numbers_hf": numbers_hf(), "filter_world": filter_world(),
            "traits_world": traits_world(), "traits_hf": traits_hf(), "checkpoints": checkpoints(tmp)}


@pytest.mark.parametrize("name", ["assemble_world", "assemble_hf", "assemble_mlp", "numbers_world", "numbers_hf",
                                  "filter_world", "traits_world", "traits_hf"])
def test_same_as_before_the_move(name):
    got = globals()[name]()
    assert json.loads(json.dumps(got)) == PINS[name]


def test_checkpoint_files_are_byte_for_byte_as_before(tmp_path):
    got = json.loads(json.dumps(checkpoints(tmp_path)))
    want = PINS["checkpoints"]
    assert {k: v for k, v in got.items()} == {k: v for k, v in want.items() if k in got}


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(fingerprints(d), indent=1))


def test_a_checkpoint_of_an_old_run_loads_through_common_adapters(tmp_path, monkeypatch):
    """Old runs resume: the adapter file goes to apply_adapter with its tensor names as written;
    a start kept as is comes back as the start; else the substrate's own full-model loader."""
    from safetensors.torch import save_file
    from ecosim.substrates.common import adapters, training
    save_file({k: v.contiguous() for k, v in _adapter().items()}, str(tmp_path / "adapter.safetensors"))
    seen = {}
    monkeypatch.setattr(training, "apply_adapter", lambda start, ad, cfg: seen.update(start=start, ad=ad, cfg=cfg) or "merged")
    assert adapters.load(tmp_path, "start", {"train": {"rank": 4}}, full=None) == "merged"
    assert seen["start"] == "start" and seen["cfg"] == {"rank": 4}
    assert {k: _th(v) for k, v in seen["ad"].items()} == {k: _th(v) for k, v in _adapter().items()}
    (tmp_path / "adapter.safetensors").unlink()
    assert adapters.load(tmp_path, "start", {"same_as_start": True}, full=None) == "start"
    assert adapters.load(tmp_path, "start", {"same_as_start": False}, full=lambda d: ("full", d)) == ("full", tmp_path)
