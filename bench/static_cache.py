"""A static key-value cache against transformers' default one for SmolLM2's batched generation
(a report, not a test): whether greedy completions stay the same, and tokens/s one at a time and
at batch 128 (64 new tokens, two-shot number prompts, bf16 autocast, 2 threads):

    ECOSIM_CACHE=~/.cache/ecosim python bench/static_cache.py
"""
import time, torch
from ecosim.substrates.hf import realmodels as rm, text
from ecosim.engine import seeds
torch.set_num_threads(2)
r = rm.load("smollm2-135m-instruct"); m, tok = r.model, r.tok
tasks = text.tasks("numbers", 128, seeds.rng(0, 0), shots=2)
prompts = [rm.render(tok, "", t.user, t.prefill) for t in tasks]
def gen(ps, new, sample=True, **kw):
    ids, attn = rm.left_pad(rm.encode(tok, ps), tok.pad_token_id)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.no_grad(), rm.autocast("bf16"):
        out = m.generate(input_ids=ids, attention_mask=attn, do_sample=sample, temperature=1.0 if sample else None, top_p=1.0, top_k=0,
                         max_new_tokens=new, min_new_tokens=new, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)
    return time.perf_counter() - t0, out[:, ids.shape[1]:]
_, a = gen(prompts[:16], 32, sample=False)
_, b = gen(prompts[:16], 32, sample=False, cache_implementation="static")
print("greedy equal rows:", int((a == b).all(1).sum()), "/ 16; tokens equal", float((a == b).float().mean()), flush=True)
for kw in ({}, {"cache_implementation": "static"}):
    t = sum(gen([p], 64, **kw)[0] for p in prompts[:3]); print("batch 1", kw, f"{3*64/t:.1f} tok/s", flush=True)
dt, _ = gen(prompts, 64, cache_implementation="static"); print("batch 128 static", f"{128*64/dt:.1f} tok/s", flush=True)
dt, _ = gen(prompts, 64); print("batch 128 dynamic", f"{128*64/dt:.1f} tok/s", flush=True)
