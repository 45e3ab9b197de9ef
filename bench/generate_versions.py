"""Two versions of ``realmodels.generate`` on the same SmolLM2 and the same prompts: which lists
are the same, and seconds, alternating (a report, not a test):

    git worktree add /tmp/ecosim_old 0e7e17d
    ECOSIM_CACHE=~/.cache/ecosim python bench/generate_versions.py --old /tmp/ecosim_old \
        --precision auto --out docs/bench/generate_versions_prefill_bf16.json

``--old``: a checkout of another commit; its ``ecosim/substrates/hf/realmodels.py`` is imported
beside this checkout's, and both generate with this checkout's loaded model. The numbers
channel's first ``--prompts`` two-shot prompts (no system message, as ``bench/generate_split.py``),
64 new tokens, in one batch, seed 3, four ways: as the channel calls it (stop at a newline, give
up on a row that cannot pass the default filter), the same greedily, constrained decoding
(digits, commas, spaces) and plainly (every row to EOS or 64 tokens). Each way runs old then new,
then new then old (a process's speed drifts), and prints both times of each and how many lists
(text and finished) are the same row for row. ``--precision``: ``auto`` (bf16 autocast where the
CPU has it) or ``fp32``. Under bf16 a change of float rounding alone (another batch, another
matmul shape) changes sampled lists: compare against ``bench/generate_split.py --engine``'s
batched against one at a time."""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from ecosim.engine import seeds
from ecosim.substrates.common.filters import FilterConfig
from ecosim.substrates.hf import realmodels, text
from ecosim.substrates.hf.logits import DECODE_CHARS, list_token_ids


def other(checkout: str):
    """``realmodels`` as the checkout ``checkout`` has it, imported under another name."""
    path = Path(checkout) / "ecosim" / "substrates" / "hf" / "realmodels.py"
    spec = importlib.util.spec_from_file_location("realmodels_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="a checkout of the other commit")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32"])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    old = other(a.old)
    r = realmodels.load("smollm2-135m-instruct")
    model, tok = r.model, r.tok
    prompts = [realmodels.render(tok, "", t.user, t.prefill)
               for t in text.tasks("numbers", a.prompts, seeds.rng(0, 0), shots=2)]
    give_up = functools.partial(text.cannot_pass, "numbers", max_numbers=FilterConfig().max_numbers)
    ways = {"channel": dict(temperature=1.0, stop=text.STOP["numbers"], give_up=give_up),
            "greedy": dict(temperature=0.0, stop=text.STOP["numbers"], give_up=give_up),
            "constrained": dict(temperature=1.0, allowed=list_token_ids(tok, DECODE_CHARS).tolist()),
            "plain": dict(temperature=1.0)}
    res = {"command": " ".join([Path(sys.executable).name] + sys.argv), "old": a.old,
           "precision": realmodels.precision(a.precision, "cpu"), "threads": a.threads, "prompts": len(prompts)}
    with torch.no_grad(), realmodels.autocast(a.precision):
        realmodels.generate(model, tok, prompts[:2], 2)  # warm-up
        for way, kw in ways.items():
            out, secs = {}, {"old": [], "new": []}
            for order in (("old", "new"), ("new", "old")):
                for name in order:
                    t0 = time.perf_counter()
                    out[name] = (old if name == "old" else realmodels).generate(
                        model, tok, prompts, 64, seed=3, batch=len(prompts), **kw)
                    secs[name].append(round(time.perf_counter() - t0, 2))
            same = sum(x == y for x, y in zip(out["old"], out["new"]))
            res[way] = {"seconds_old": secs["old"], "seconds_new": secs["new"], "same_lists": same}
            print(f"{way:12} the same lists {same}/{len(prompts)}; old {secs['old']} s, new {secs['new']} s", flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
