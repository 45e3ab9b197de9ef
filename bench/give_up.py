"""What giving up on hopeless rows saves when a real model writes number lists (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/give_up.py [--prompts 192] [--batch 64] [--threads 2]
        [--out docs/bench/give_up.json]

SmolLM2-135M-Instruct writes the numbers channel's prompts (two worked examples, the prefill,
no system message: as the base writes ``text.logit_lists: base``) at temperature 1, 64 new tokens
at most, stop at the newline, under the base's ``autocast: auto``; twice, with the same seed:
without ``give_up`` (every row runs to EOS, the newline or 64 tokens) and with
``give_up=text.cannot_pass`` (a row stops once no continuation could pass the filter;
``realmodels.generate``), as ``write`` now runs it. Reported: the seconds of each, the lists the
paper's filter keeps in each (they must be the same lists, row for row), and the reject reasons
(a given-up row is filed under what it wrote, not "unfinished")."""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

from ecosim.engine import seeds
from ecosim.substrates.hf import realmodels, text

sys.path.insert(0, str(Path(__file__).parent))
from real_models import cpu_model  # noqa: E402  (a bench beside this one)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = realmodels.load("smollm2-135m-instruct")
    tasks = text.tasks("numbers", a.prompts, seeds.rng(a.seed, 17), shots=2)
    prompts = [realmodels.render(r.tok, "", t.user, t.prefill) for t in tasks]
    give_up = functools.partial(text.cannot_pass, "numbers", max_numbers=10)
    runs = {}
    for name, g in (("without", None), ("with", give_up)):
        t0 = time.time()
        with realmodels.autocast("auto"):
            outs = realmodels.generate(r.model, r.tok, prompts, text.MAX_NEW_TOKENS["numbers"], 1.0, seed=a.seed,
                                       batch=a.batch, stop=text.STOP["numbers"], give_up=g)
        secs = time.time() - t0
        why = {}
        kept = {}
        for i, (t, finished) in enumerate(outs):
            reason = text.check("numbers", t, None) if finished else "unfinished"
            if reason is None:
                kept[i] = t
            else:
                why[reason] = why.get(reason, 0) + 1
        runs[name] = {"seconds": secs, "kept": len(kept), "rejected": dict(sorted(why.items())), "_kept": kept}
        print(f"{name:8} give_up: {secs:6.1f} s, kept {len(kept)}/{a.prompts}, rejected {runs[name]['rejected']}", flush=True)
    same = runs["with"]["_kept"] == runs["without"]["_kept"]
    for v in runs.values():
        v.pop("_kept")
    speedup = runs["without"]["seconds"] / runs["with"]["seconds"]
    print(f"the same kept lists, row for row: {same}; {speedup:.2f}x faster with give_up")
    if a.out:
        out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "cpu": cpu_model(),
               "threads": a.threads, "prompts": a.prompts, "batch": a.batch, "runs": runs,
               "same_kept_lists": same, "speedup": speedup}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
