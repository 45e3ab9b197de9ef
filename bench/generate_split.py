"""Where SmolLM2's generation time goes, per prompt: the prefill of the prompt and the decode steps,
batched and one prompt at a time (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/generate_split.py --out docs/bench/generate_split_fp32.json

The numbers channel's two-shot prompts (``text.tasks("numbers", batch, rng(0), shots=2)``, no
system message, as ``bench/real_models.py``), left-padded; one forward pass over the prompts
(the prefill, logits at the last position only, as ``generate`` computes them), then ``max_new``
- 1 single-token steps on a key-value cache (the decode), tokens drawn at temperature 1.
Batched: all ``--batch`` prompts at once; one at a time: the first ``--single`` prompts alone,
without padding, on each cache. The batched generation is timed three times: the prefill in one
pass; as ``realmodels.generate`` runs it (``prefill``: the tokens every prompt starts with once,
when the cache has room, then slices of rows of at most ``PREFILL_TOKENS`` padded tokens, each
padded to its own longest row; how far its last logits are from one pass is printed); and that
with the decode on the cache ``realmodels.generate`` uses, with room
for the new tokens (``roomy_cache``: no copy of the cache per step), where the first two use
transformers' ``DynamicCache``; ``--rounds`` times each, the order turning each round, and the
fastest round of each is reported (every round is in the JSON): the first large pass of a
process is slower, paying for memory the process had not used yet. Under ``autocast: auto``
(bf16 where the CPU has it, else fp32).

Why it matters: batching shares the decode steps' weight reads among the rows, but a prompt's
prefill costs the same FLOPs batched or not. So the batched speed-up over one prompt at a time
can be at most (prefill + decode, one at a time) / (prefill per prompt, batched): the
``bound_free_decode`` this prints, the speed-up if the batched decode cost nothing.

``--lists N``: instead, ``realmodels.generate`` samples N prompts' lists (64 new tokens, batches
of 64, seed 3) as it runs (``prefill``, a cache with room), with transformers' growing cache (so
no shared prompt start: ``prefill`` shares one only on a cache with room), and with that and the
prompt pass in one: seconds, and how many lists are the same in all three.

``--engine``: instead, the speed-up the channel gets: ``realmodels.generate`` itself (``prefill``, a
cache with room, each row sampling from its own stream with ``RowSampler``, a row that ended
leaving the batch) on ``--batch`` prompts in one batch against the first ``--single`` of them one
at a time (``batch=1``), both as the numbers channel calls it (stop at a newline, give up on a row
that can no longer pass the filter) and plainly (every row to EOS or ``--max-new``); which lists
are the same row for row; the batched call with ended rows kept to the end (``drop=False``), its
time and how many of its lists are the same as with them dropped; and the batched call with one
new token, the prefill's share. ``--profile FILE`` (with ``--engine``):
torch.profiler's self CPU time per op of the plain batched call less that of its one-token call,
so the decode steps' own ops, and the speed-up the decode would allow if it cost only its matmuls.

``--smoke``: a tiny random Llama with SmolLM2's tokenizer, 8 prompts x 4 tokens: proves it runs."""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from ecosim.engine import seeds
from ecosim.substrates.hf import text
from ecosim.substrates.hf.realmodels import (PREFILL_TOKENS, autocast, encode, left_pad, load, load_tokenizer,
                                            precision, prefill, render, roomy_cache)

NAME = "smollm2-135m-instruct"


def split(model, enc, pad: int, max_new: int, keep: dict | None = None, roomy: bool = False,
          slices: int | None = 0) -> dict:
    """Seconds of the prefill and of the decode steps of one generation from the prompts ``enc``
    (token ids): the prefill in one left-padded pass, or (``slices`` not 0) as ``realmodels.generate``
    runs it (``prefill``: the shared tokens once, slices of rows of at most ``slices`` padded
    tokens, None its default); ``keep``: gets the prefill's last logits, for the check; ``roomy``:
    the cache ``realmodels.generate`` uses, ``roomy_cache``, instead of transformers' DynamicCache."""
    from transformers import DynamicCache
    gen = torch.Generator().manual_seed(0)
    cache = roomy_cache(model, max_new) if roomy else DynamicCache(config=model.config)
    t0 = time.perf_counter()
    if slices == 0:
        ids, attn = left_pad(enc, pad)
        pos = (attn.cumsum(1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, past_key_values=cache, use_cache=True,
                       logits_to_keep=1).logits[:, -1]
    else:
        logits, ids, attn, pos = prefill(model, enc, pad, cache, slices)
    t_pre = time.perf_counter() - t0
    if keep is not None:
        keep.update(logits=logits.clone())
    nxt = torch.softmax(logits.float(), -1).multinomial(1, generator=gen)
    pos = pos[:, -1:]
    t0 = time.perf_counter()
    for _ in range(max_new - 1):
        attn, pos = torch.cat([attn, torch.ones_like(attn[:, :1])], 1), pos + 1
        out = model(input_ids=nxt, attention_mask=attn, position_ids=pos, past_key_values=cache, use_cache=True)
        nxt = torch.softmax(out.logits[:, -1].float(), -1).multinomial(1, generator=gen)
    return {"prefill_s": t_pre, "decode_s": time.perf_counter() - t0}


def save(res: dict, out: str | None) -> None:
    """Write ``res`` as JSON to ``out`` (None: nowhere)."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")


def numbers_prompts(tok, n: int) -> list[str]:
    """The numbers channel's first ``n`` two-shot prompts, rendered with no system message."""
    return [render(tok, "", t.user, t.prefill) for t in text.tasks("numbers", n, seeds.rng(0, 0), shots=2)]


def lists(model, tok, a) -> int:
    """``--lists``: the same sampled lists as ``realmodels.generate`` runs (``prefill``, a cache with
    room), with transformers' growing cache, and also with the prompt pass in one?"""
    from transformers import DynamicCache

    from ecosim.substrates.hf import realmodels
    prompts = numbers_prompts(tok, a.lists)
    out, secs = {}, {}
    growing = lambda m, room: DynamicCache(config=m.config)  # noqa: E731
    try:  # 10**9 tokens: never sliced
        for how, tokens, cache in (("prefill_roomy_cache", PREFILL_TOKENS, roomy_cache),
                                   ("row_slices", PREFILL_TOKENS, growing), ("one_pass", 10 ** 9, growing)):
            realmodels.PREFILL_TOKENS, realmodels.roomy_cache = tokens, cache
            t0 = time.perf_counter()
            with autocast("auto"):
                out[how] = realmodels.generate(model, tok, prompts, a.max_new, 1.0, seed=3, batch=64)
            secs[how] = time.perf_counter() - t0
    finally:
        realmodels.PREFILL_TOKENS, realmodels.roomy_cache = PREFILL_TOKENS, roomy_cache
    same = min(sum(x == y for x, y in zip(out["prefill_roomy_cache"], out[k])) for k in ("row_slices", "one_pass"))
    res = {"command": " ".join([Path(sys.executable).name] + sys.argv), "lists": a.lists, "max_new": a.max_new,
           "seconds": secs, "same_lists": same, "precision": precision("auto", "cpu"), "threads": a.threads}
    print(f"{a.lists} lists: as generate runs them {secs['prefill_roomy_cache']:.1f} s, row slices "
          f"{secs['row_slices']:.1f} s, one pass {secs['one_pass']:.1f} s; the same lists in all three: {same}/{a.lists}")
    save(res, a.out)
    return 0 if same == a.lists else 1


def op_seconds(call) -> tuple[float, dict]:
    """Wall seconds of ``call()`` under torch.profiler, and each op's self CPU seconds."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as p:
        t0 = time.perf_counter()
        call()
        wall = time.perf_counter() - t0
    return wall, {e.key: e.self_cpu_time_total / 1e6 for e in p.key_averages()}


def engine(model, tok, a) -> int:
    """``--engine``: ``realmodels.generate`` batched against one prompt at a time, as the channel
    calls it and plainly; ``--profile``: where the plain batched call's decode steps spend time."""
    import functools

    from ecosim.substrates.common.filters import FilterConfig
    from ecosim.substrates.hf import realmodels
    prompts = numbers_prompts(tok, a.batch)
    ones = prompts[:a.single]  # generate seeds row i from (seed, i): the first prompts keep their streams
    give_up = functools.partial(text.cannot_pass, "numbers", max_numbers=FilterConfig().max_numbers)  # the default filter's
    calls = {"channel": dict(stop=text.STOP["numbers"], give_up=give_up), "plain": {}}
    res = {"command": " ".join([Path(sys.executable).name] + sys.argv), "model": NAME, "precision": precision("auto", "cpu"),
           "threads": a.threads, "batch": len(prompts), "single": len(ones), "max_new": a.max_new}
    run = lambda ps, n, batch, kw: realmodels.generate(model, tok, ps, n, 1.0, seed=3, batch=batch, **kw)  # noqa: E731
    with autocast("auto"):
        run(prompts[:2], 2, 2, {})  # warm-up
        for how, kw in calls.items():
            t0 = time.perf_counter()
            kept = run(prompts, a.max_new, a.batch, {**kw, "drop": False})
            tk = time.perf_counter() - t0
            t0 = time.perf_counter()
            batched = run(prompts, a.max_new, a.batch, kw)
            tb = time.perf_counter() - t0
            t0 = time.perf_counter()
            run(prompts, 1, a.batch, kw)  # one new token: the prefill's share
            tp = time.perf_counter() - t0
            t0 = time.perf_counter()
            alone = run(ones, a.max_new, 1, kw)
            t1 = time.perf_counter() - t0
            r = res[how] = {"batched_s_per_prompt": tb / len(prompts), "prefill_s_per_prompt": tp / len(prompts),
                            "batched_rows_kept_s_per_prompt": tk / len(prompts),
                            "one_at_a_time_s_per_prompt": t1 / len(ones),
                            "same_lists": sum(x == y for x, y in zip(alone, batched)),
                            "same_lists_rows_kept": sum(x == y for x, y in zip(kept, batched)),
                            "finished": sum(f for _, f in batched)}
            r["speedup"] = r["one_at_a_time_s_per_prompt"] / r["batched_s_per_prompt"]
            r["speedup_rows_kept"] = r["one_at_a_time_s_per_prompt"] / r["batched_rows_kept_s_per_prompt"]
            r["bound_free_decode"] = r["one_at_a_time_s_per_prompt"] / r["prefill_s_per_prompt"]
            print(f"  {how:8} per prompt: one at a time {r['one_at_a_time_s_per_prompt']:.3f} s ({len(ones)} prompts), "
                  f"batched {r['batched_s_per_prompt']:.3f} s (its prefill {r['prefill_s_per_prompt']:.3f} s): "
                  f"{r['speedup']:.2f}x, at most {r['bound_free_decode']:.2f}x with a free decode; "
                  f"the same lists {r['same_lists']}/{len(ones)}; with ended rows kept in the batch (drop=False) "
                  f"{r['batched_rows_kept_s_per_prompt']:.3f} s, {r['speedup_rows_kept']:.2f}x, the same lists as dropping them "
                  f"{r['same_lists_rows_kept']}/{len(prompts)}")
        if a.profile:
            wall1, ops1 = op_seconds(lambda: run(prompts, 1, a.batch, {}))
            wall, ops = op_seconds(lambda: run(prompts, a.max_new, a.batch, {}))
            dec = {k: v - ops1.get(k, 0.0) for k, v in ops.items()}
            top = sorted(dec.items(), key=lambda kv: -kv[1])[:15]
            decode_s, mm_s = wall - wall1, dec.get("aten::mm", 0.0) + dec.get("aten::addmm", 0.0)
            one = res["plain"]["one_at_a_time_s_per_prompt"]
            bound = one / (res["plain"]["prefill_s_per_prompt"] + mm_s / len(prompts))
            res["profile"] = {"decode_wall_s": decode_s, "decode_op_s": sum(dec.values()), "decode_mm_s": mm_s,
                              "bound_matmul_only_decode": bound, "top_ops_s": dict(top)}
            rows = "\n".join(f"| `{k}` | {v:.2f} | {v / decode_s:.0%} |" for k, v in top)
            Path(a.profile).parent.mkdir(parents=True, exist_ok=True)
            Path(a.profile).write_text(
                f"# The decode steps of `realmodels.generate`, {len(prompts)} prompts x {a.max_new} new tokens in one batch\n\n"
                f"`{res['command']}` ({res['precision']}, {a.threads} threads). Self CPU seconds per op of the plain batched "
                f"call less those of the same call with one new token (its prefill), under torch.profiler: the decode's "
                f"{decode_s:.1f} s of wall time ({decode_s / max(a.max_new - 1, 1) * 1e3:.0f} ms a step), "
                f"{sum(dec.values()):.1f} s of it in ops.\n\n| op | seconds | share of the decode |\n|---|---|---|\n{rows}\n\n"
                f"If the decode cost only its matmuls ({mm_s:.1f} s), batched generation would be {bound:.2f}x one at a time.\n")
            print(f"  decode {decode_s:.1f} s, matmuls {mm_s:.1f} s: at most {bound:.2f}x if the decode were matmuls only; "
                  f"wrote {a.profile}")
    save(res, a.out)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-new", type=int, default=64, help="the numbers channel's text.MAX_NEW_TOKENS")
    ap.add_argument("--single", type=int, default=4, help="prompts timed one at a time")
    ap.add_argument("--rounds", type=int, default=2, help="each batched variant this many times, in turn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lists", type=int, default=None, help="compare realmodels.generate's lists instead")
    ap.add_argument("--engine", action="store_true", help="time realmodels.generate itself, batched and one at a time")
    ap.add_argument("--profile", default=None, help="with --engine: where the batched decode spends time (markdown)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.smoke:
        from transformers import LlamaConfig, LlamaForCausalLM
        tok = load_tokenizer(NAME)
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             pad_token_id=tok.pad_token_id)).eval()
        a.batch, a.max_new, a.single = 8, 4, 2
    else:
        r = load(NAME)
        model, tok = r.model, r.tok
    if a.lists:
        return lists(model, tok, a)
    if a.engine:
        return engine(model, tok, a)
    mode = precision("auto", "cpu")
    enc = encode(tok, numbers_prompts(tok, a.batch))
    batch = sorted(enc, key=len)  # as generate sorts a batch
    width = max(map(len, enc))
    slices = 4 * width if a.smoke else None
    variants = {  # name: (prefill as generate runs it, decode on the cache with room)
        "batched": (False, False), "batched_prefill": (True, False), "batched_prefill_roomy_cache": (True, True)}
    rounds: dict[str, list[dict]] = {k: [] for k in variants}
    diff = 0.0
    with torch.no_grad(), autocast("auto"):
        split(model, enc[:2], tok.pad_token_id, 2)  # warm-up
        for r in range(a.rounds):  # the order turns each round: a process's first large pass pays for fresh memory
            names = list(variants)[r % 3:] + list(variants)[:r % 3]
            keep = {}
            for k in names:
                sliced, roomy = variants[k]
                keep[k] = {}
                rounds[k].append(split(model, batch, tok.pad_token_id, a.max_new, keep[k], roomy=roomy,
                                       slices=slices if sliced else 0))
            diff = max([diff] + [(keep["batched"]["logits"].float() - keep[k]["logits"].float()).abs().max().item()
                                 for k in variants])
        ones = [split(model, [e], tok.pad_token_id, a.max_new) for e in enc[:a.single]]
        ones_roomy = [split(model, [e], tok.pad_token_id, a.max_new, roomy=True) for e in enc[:a.single]]
    n = len(enc)
    best = {k: min(v, key=lambda x: x["prefill_s"] + x["decode_s"]) for k, v in rounds.items()}
    per = {**{k: {t: x / n for t, x in b.items()} for k, b in best.items()},
           "one_at_a_time": {k: sum(o[k] for o in ones) / len(ones) for k in ("prefill_s", "decode_s")},
           "one_at_a_time_roomy_cache": {k: sum(o[k] for o in ones_roomy) / len(ones) for k in ("prefill_s", "decode_s")}}
    total = {k: sum(v.values()) for k, v in per.items()}
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {"command": " ".join([Path(sys.executable).name] + sys.argv), "model": "tiny random Llama" if a.smoke else NAME,
           "precision": mode, "threads": a.threads, "batch": n, "max_new": a.max_new, "single": len(ones),
           "prompt_tokens_mean": sum(map(len, enc)) / n, "padded_length": width,
           "prefill_tokens_per_slice": slices or PREFILL_TOKENS,
           "max_abs_logit_difference": diff,
           "rounds": a.rounds, "batched_seconds_by_round": rounds,
           "per_prompt_s": per, "per_prompt_total_s": total,
           "speedup": total["one_at_a_time"] / total["batched"],
           "speedup_prefill": total["one_at_a_time"] / total["batched_prefill"],
           "speedup_prefill_roomy_cache": total["one_at_a_time"] / total["batched_prefill_roomy_cache"],
           # realmodels.generate's own path, batched against one prompt at a time
           "speedup_engine": total["one_at_a_time_roomy_cache"] / total["batched_prefill_roomy_cache"],
           "bound_free_decode": total["one_at_a_time"] / per["batched"]["prefill_s"],
           "bound_free_decode_prefill": total["one_at_a_time"] / per["batched_prefill"]["prefill_s"],
           "process_user_s": ru.ru_utime, "process_sys_s": ru.ru_stime, "max_rss_gb": ru.ru_maxrss / 1e6}
    print(f"{res['model']}, {mode}, {a.threads} threads; {n} prompts of {res['prompt_tokens_mean']:.0f} tokens "
          f"(padded to {res['padded_length']}) x {a.max_new} new")
    for k, v in per.items():
        print(f"  {k:30} per prompt: prefill {v['prefill_s']:.3f} s, decode {v['decode_s']:.3f} s, total {total[k]:.3f} s")
    print(f"  batched speed-up {res['speedup']:.2f}x (prefill as generate runs it {res['speedup_prefill']:.2f}x, "
          f"last logits within {diff:.2g} of one pass; and a cache with room {res['speedup_prefill_roomy_cache']:.2f}x; "
          f"against one at a time with a cache with room too, realmodels.generate's path: {res['speedup_engine']:.2f}x); "
          f"with a free batched decode at most {res['bound_free_decode']:.2f}x "
          f"({res['bound_free_decode_prefill']:.2f}x with generate's prefill); "
          f"process user {ru.ru_utime:.0f} s, sys {ru.ru_stime:.0f} s")
    save(res, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
