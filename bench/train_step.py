"""Seconds per training update of a SmolLM2 LoRA student on this CPU: attention implementation
(torch's fused sdpa, or eager) x autocast (bf16 matmuls, or fp32) x torch threads x decoder layers
plain or compiled (``compute.compile_layers``; a report, not a test; nothing else should run
meanwhile):

    ECOSIM_CACHE=~/.cache/ecosim python bench/train_step.py --out docs/bench/train_step.json

The batch is 8 of the numbers channel's requests and lists (chat template, no system message; the
completions are written here from a fixed stream, so no run directory is needed), LoRA r8 as the
shipped students. Each setting trains from the same adapter initialisation for ``--steps``
updates; the first ``--warmup`` are not timed. The losses of each setting are printed beside its
time: the settings compute the same updates up to float rounding. A compiled setting's first
update compiles (its time is in ``seconds``, not in the median).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ecosim.substrates.common.training import TrainConfig, compile_layers, encode_pairs, lm_loss, pad_batch, with_lora
from ecosim.substrates.hf import realmodels
from ecosim.substrates.hf.substrate import NO_SYSTEM, Codec
from ecosim.substrates.hf.text import tasks


def batch(tok, n: int = 8, seed: int = 0):
    """n rendered (prompt, completion) pairs of the numbers channel: its requests, and lists of
    3-10 numbers in its format."""
    rng = np.random.default_rng(seed)
    out = []
    for t in tasks("numbers", n, rng, shots=0):
        nums = ", ".join(str(x) for x in rng.integers(0, 1000, rng.integers(3, 11)))
        out.append((realmodels.render(tok, NO_SYSTEM, t.request, t.prefill), f" {nums}."))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--attention", default="sdpa,eager")
    ap.add_argument("--autocast", default="bf16,off")
    ap.add_argument("--compile", default="off", help="off,on: decoder layers plain and/or compiled")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    r = realmodels.load(a.model)
    tok, model = r.tok, r.model
    pairs = batch(tok)
    enc = encode_pairs(Codec(tok), pairs)
    ids, attn, mask = pad_batch(Codec(tok), enc)
    rows = []
    for threads in map(int, a.threads.split(",")):
        torch.set_num_threads(threads)
        for impl in a.attention.split(","):
            model.set_attn_implementation(impl)
            for cast, comp in ((c, k) for c in a.autocast.split(",") for k in a.compile.split(",")):
                torch.manual_seed(0)
                torch._dynamo.reset()  # each compiled setting compiles afresh
                m = with_lora(model, TrainConfig(mode="lora", rank=8, alpha=16))
                compile_layers(m, comp == "on")
                opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=5e-4)
                secs, losses = [], []
                with realmodels.autocast(cast, "cpu", training=True):
                    for i in range(a.steps):
                        t0 = time.perf_counter()
                        loss = lm_loss(m, ids, attn, mask)
                        loss.backward()
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                        secs.append(time.perf_counter() - t0)
                        losses.append(round(loss.item(), 5))
                compile_layers(m, False)
                m.unload()  # the base's modules back, unchanged (the adapter is dropped)
                row = {"threads": threads, "attention": impl, "autocast": cast, "compile": comp,
                       "seconds_per_update": round(statistics.median(secs[a.warmup:]), 3),
                       "seconds": [round(s, 3) for s in secs], "losses": losses}
                rows.append(row)
                print(f"threads {threads} {impl:5} {cast:4} compile {comp:3}: {row['seconds_per_update']:.3f} s/update  "
                      f"losses {losses}", flush=True)
    tokens = int(attn.sum())
    out = {"command": " ".join(["python"] + sys.argv), "model": a.model, "cpu": platform.processor() or platform.machine(),
           "batch": len(pairs), "tokens": tokens, "padded_tokens": int(attn.numel()), "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"batch of {len(pairs)}: {tokens} tokens ({attn.numel()} padded); wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
