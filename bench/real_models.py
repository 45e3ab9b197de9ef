"""Speed of a real model (SmolLM2-135M-Instruct) on this machine's CPU, in one run (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/real_models.py [--out results/bench_real_models.json]
        [--dtypes float32,bfloat16,autocast] [--threads N] [--batch 64] [--max-new 32] [--smoke]
        [--profile results/profile.txt]

Each "dtype" is how the model computes: float32 or bfloat16 weights, or ``autocast``: float32
weights with matmuls in bf16 under torch.autocast (``bases.X.autocast: bf16``; what the
substrate runs with autocast on). For each:
  1. matmul rate in that dtype: a 2048x2048 @ 2048x2048 matmul (2*n^3 FLOP), and F.linear at the
     model's MLP shape (2048 x 576 -> 1536), the op the model actually runs (bf16 takes different
     kernel paths for the two on a CPU without native bf16); 1 warm-up, then up to 10 timed reps
     within 20 s; the best rep is the "peak";
  2. generation: the numbers channel's prompts (``text.tasks("numbers", batch, rng(0), shots=2)``,
     rendered with no system message) sampled at temperature 1 (top_p 1, top_k 0) with
     ``model.generate`` and left padding, stop strings off and ``min_new_tokens == max_new_tokens``
     so that every row yields exactly ``max_new`` tokens: (a) all prompts in one batch, (b) one
     prompt per call on the first ``--single`` prompts (tokens/s is a rate, so the subset's rate
     stands for all; the full time is scaled). New tokens are counted from the output (up to and
     including a first EOS), next to the nominal rows x max_new;
  3. LoRA training (rank 8, alpha 16, every attention and MLP projection: ``training.with_lora``):
     1 warm-up + ``--steps`` timed forward+backward+AdamW steps on batches of ``--train-batch``
     (prompt, 30-token completion) pairs, loss on completion tokens (``models.lm_loss``). FLOPs
     per step = 4 x (non-embedding linear params) x (padded tokens) + 4 x (lm_head params) x
     (target positions): forward 2x, backward through frozen weights 2x (input gradients only);
     LoRA's own FLOPs and attention scores are left out, so the fraction is a slight underestimate.
--profile FILE: torch.profiler's table (self CPU time, top 25 ops) of one batched generate call
per dtype, appended to FILE: where the time of batched generation goes.
--smoke: a tiny random Llama with SmolLM2's tokenizer, 4 prompts x 4 tokens, 2 steps: proves it runs.

Cost: on the 2-core AVX2 AMD EPYC (no native bf16) a smoke check saw bf16 at ~1 GFLOP/s (square
matmul) and ~3-8 GFLOP/s (F.linear) against ~50-80 fp32, so the bf16 half may take an hour or more
where fp32 takes minutes; ``--dtypes float32`` runs fp32 alone."""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ecosim.substrates.hf import text
from ecosim.substrates.world.models import lm_loss
from ecosim.substrates.hf.realmodels import autocast, encode, left_pad, load, load_tokenizer, render
from ecosim.substrates.hf.substrate import Codec
from ecosim.substrates.common.training import TrainConfig, pad_batch, with_lora

NAME = "smollm2-135m-instruct"
DT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "autocast": torch.float32}  # weights


def cpu_model() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def rate(fn, flop: float, reps: int = 10, budget_s: float = 20.0) -> dict:
    """FLOP/s of ``fn`` (1 warm-up, then up to ``reps`` timed calls or ``budget_s`` seconds: bf16
    without hardware support can run at ~1 GFLOP/s); the best call is the "peak"."""
    fn()
    ts, t_all = [], time.perf_counter()
    while len(ts) < reps and (not ts or time.perf_counter() - t_all < budget_s):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"reps": len(ts), "peak_flops": flop / min(ts), "median_flops": flop / float(np.median(ts))}


def matmul_rates(dtype, n: int, cfg) -> dict:
    """The square n^3 matmul, and F.linear at the model's own MLP shape (n tokens x hidden ->
    intermediate), the op that dominates its forward pass; both in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = torch.randn(n, cfg.hidden_size, dtype=dtype)
    w = torch.randn(cfg.intermediate_size, cfg.hidden_size, dtype=dtype)
    lin_flop = 2 * n * cfg.hidden_size * cfg.intermediate_size
    return {"square": {"n": n, **rate(lambda: a @ b, 2 * n ** 3)},
            "linear": {"shape": [n, cfg.hidden_size, cfg.intermediate_size],
                       **rate(lambda: torch.nn.functional.linear(x, w), lin_flop)}}


GEN_KW: dict = {}  # --cache static: {"cache_implementation": "static"} for every generate call


def sample(model, tok, prompts, max_new, seed=0) -> tuple[float, int]:
    """Seconds and new tokens (up to and including a first EOS) of one batched generate call."""
    ids, attn = left_pad(encode(tok, prompts), tok.pad_token_id)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, temperature=1.0,
                             top_p=1.0, top_k=0, max_new_tokens=max_new, min_new_tokens=max_new,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **GEN_KW)
    dt = time.perf_counter() - t0
    new = out[:, ids.shape[1]:].tolist()
    return dt, sum(row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row) for row in new)


def flop_params(model) -> tuple[int, int]:
    """(linear params of the transformer body, params of the output layer)."""
    body = sum(m.weight.numel() for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and "lm_head" not in n and "lora_" not in n)
    return body, model.get_output_embeddings().weight.numel()


def speedup_ceiling(body: int, head: int, prompt_tokens: int, n: int, max_new: int, peak_flops: float,
                    one_at_a_time_s_per_prompt: float) -> dict:
    """The batched speed-up a generate call running at the matmul peak would reach against the
    measured one-at-a-time time. The prefill of the prompts costs the same FLOPs batched or not
    (logits at the last position only, as generate computes them), so batching can only save
    decode time: with long prompts and few new tokens the ceiling sits near the prefill's share."""
    flop = 2 * body * prompt_tokens + 2 * head * n + 2 * (body + head) * n * (max_new - 1)
    floor_s = flop / peak_flops
    return {"flop": flop, "prefill_share": 2 * body * prompt_tokens / flop,
            "seconds_at_peak": floor_s, "ceiling": one_at_a_time_s_per_prompt * n / floor_s}


def bench_dtype(dtype: str, a, tok, prompts, prompt_tokens: int, tasks_) -> dict:
    """``prompt_tokens``: the prompts' total length in tokens."""
    return _bench(dtype, a, tok, prompts, prompt_tokens, tasks_)


def profile(model, tok, prompts, max_new: int, title: str, path: str) -> None:
    """Append torch.profiler's top ops (self CPU time) of one batched generate call to ``path``."""
    from torch.profiler import ProfilerActivity, profile as prof
    with prof(activities=[ProfilerActivity.CPU]) as p:
        dt, n = sample(model, tok, prompts, max_new)
    table = p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    with open(path, "a") as f:
        f.write(f"## {title}: {len(prompts)} prompts x {max_new} new tokens, {dt:.1f} s under the profiler\n\n"
                f"```\n{table}\n```\n\n")


def _bench(dtype: str, a, tok, prompts, prompt_tokens: int, tasks_) -> dict:
    if a.smoke:
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        model = LlamaForCausalLM(cfg).to(DT[dtype]).eval()
    else:
        model = load(NAME, dtype="float32" if dtype == "autocast" else dtype).model
    mode = "bf16" if dtype == "autocast" else "off"  # as the substrate runs: a context per write, per training
    with autocast(mode):
        res = {"dtype": dtype, "matmul": matmul_rates(DT[dtype], a.matmul_n, model.config)}
        _generate(res, model, tok, prompts, prompt_tokens, a, dtype)
    with autocast(mode, training=True):
        _train(res, model, tok, tasks_, a)
    return res


def _generate(res: dict, model, tok, prompts, prompt_tokens: int, a, dtype: str) -> None:
    sample(model, tok, prompts[:1], 2)  # warm-up
    tb, nb = sample(model, tok, prompts, a.max_new)
    t1, n1 = zip(*(sample(model, tok, [p], a.max_new, seed=i) for i, p in enumerate(prompts[:a.single])))
    r_b, r_1 = nb / tb, sum(n1) / sum(t1)
    if a.profile:
        profile(model, tok, prompts, a.max_new, f"{dtype} ({cpu_model()}, {torch.get_num_threads()} threads)", a.profile)
    res["generate"] = {
        "prompts": len(prompts), "max_new": a.max_new, "nominal_tokens": len(prompts) * a.max_new,
        "batched": {"batch": len(prompts), "seconds": tb, "new_tokens": nb, "tokens_per_s": r_b},
        "one_at_a_time": {"batch": 1, "prompts_timed": len(n1), "seconds": sum(t1), "new_tokens": sum(n1),
                          "tokens_per_s": r_1, "seconds_scaled_to_all": sum(t1) * len(prompts) / len(n1),
                          "note": f"timed on the first {len(n1)} prompts, one generate call each"},
        "speedup": r_b / r_1}
    body, head = flop_params(model)  # LoRA's own modules are left out, so these hold for training too
    res["generate"]["speedup_ceiling"] = speedup_ceiling(
        body, head, prompt_tokens, len(prompts), a.max_new,
        res["matmul"]["square"]["peak_flops"], sum(t1) / len(t1))


def _train(res: dict, model, tok, tasks_, a) -> None:
    """LoRA training steps (``--steps`` timed after one warm-up)."""
    body, head = flop_params(model)
    model = with_lora(model, TrainConfig(rank=8, alpha=16))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    codec = Codec(tok)
    pairs = []
    for t in tasks_:  # the reference answer cut to 29 tokens (+ EOS from the codec = 30)
        comp = tok.decode(tok(t.reference, add_special_tokens=False)["input_ids"][:29])
        pairs.append((render(tok, "", t.user, t.prefill), comp))
    k, tot = a.train_batch, {"seconds": 0.0, "padded": 0, "real": 0, "completion": 0, "flop": 0}
    for step in range(a.steps + 1):
        batch = [pairs[(step * k + j) % len(pairs)] for j in range(k)]
        ids, attn, mask = pad_batch(codec, codec.encode_pairs(batch))
        t0 = time.perf_counter()
        loss = lm_loss(model, ids, attn, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if step == 0:
            continue  # warm-up
        tot["seconds"] += dt
        tot["padded"] += ids.numel()
        tot["real"] += int(attn.sum())
        tot["completion"] += int(mask.sum())
        tot["flop"] += 4 * body * ids.numel() + 4 * head * int(mask[:, 1:].sum())
    s = tot["seconds"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    res["train"] = {
        "lora": {"rank": 8, "alpha": 16, "trainable_params": trainable},
        "batch": k, "steps_timed": a.steps, "seconds": s, "loss_last": loss.item(),
        "tokens_padded": tot["padded"], "tokens_real": tot["real"], "tokens_completion": tot["completion"],
        "tokens_per_s_padded": tot["padded"] / s, "tokens_per_s_real": tot["real"] / s,
        "completion_tokens_per_s": tot["completion"] / s,
        "flop_rule": "4 x body_linear_params x padded_tokens + 4 x lm_head_params x target_positions",
        "body_linear_params": body, "lm_head_params": head,
        "achieved_flops": tot["flop"] / s,
        "fraction_of_matmul_peak": tot["flop"] / s / res["matmul"]["square"]["peak_flops"],
        "fraction_of_linear_peak": tot["flop"] / s / res["matmul"]["linear"]["peak_flops"]}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench_real_models.json")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--single", type=int, default=8, help="prompts timed one at a time")
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--profile", default=None, help="append a profile of batched generation to this file")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--cache", choices=("dynamic", "static"), default="dynamic",
                    help="the KV cache of generation: transformers' default (grows by concatenation) or static")
    a = ap.parse_args()
    if a.smoke:
        a.batch, a.max_new, a.single, a.train_batch, a.steps, a.matmul_n = 4, 4, 2, 2, 2, 256
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.cache == "static":
        GEN_KW["cache_implementation"] = "static"
    tok = load_tokenizer(NAME)
    tasks_ = text.tasks("numbers", a.batch, np.random.default_rng(0), shots=2)
    prompts = [render(tok, "", t.user, t.prefill) for t in tasks_]
    lens = [len(x) for x in encode(tok, prompts)]
    out = {"command": " ".join([sys.executable] + sys.argv),
           "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "model": "tiny random Llama (smoke)" if a.smoke else NAME, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "cpu": cpu_model(), "args": vars(a),
           "prompt_tokens": {"min": min(lens), "mean": round(float(np.mean(lens)), 1), "max": max(lens)},
           "results": [bench_dtype(d, a, tok, prompts, sum(lens), tasks_) for d in a.dtypes.split(",")]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"{out['model']}, torch {out['torch']}, {out['threads']} threads, {out['cpu']}")
    print(f"{'dtype':9} {'matmul GF/s':>11} {'linear GF/s':>11} {'gen b=' + str(a.batch) + ' tok/s':>15}"
          f" {'gen b=1 tok/s':>13} {'speed-up':>8} {'at peak':>7} {'train tok/s':>11} {'compl tok/s':>11} {'train GF/s':>10}"
          f" {'of mm':>6} {'of lin':>6}")
    for r in out["results"]:
        g, t = r["generate"], r["train"]
        mm, lin = r["matmul"]["square"]["peak_flops"], r["matmul"]["linear"]["peak_flops"]
        print(f"{r['dtype']:9} {mm / 1e9:11.1f} {lin / 1e9:11.1f} {g['batched']['tokens_per_s']:15.1f}"
              f" {g['one_at_a_time']['tokens_per_s']:13.1f} {g['speedup']:7.1f}x {g['speedup_ceiling']['ceiling']:6.1f}x"
              f" {t['tokens_per_s_real']:11.1f}"
              f" {t['completion_tokens_per_s']:11.1f} {t['achieved_flops'] / 1e9:10.1f}"
              f" {t['fraction_of_matmul_peak']:6.0%} {t['fraction_of_linear_peak']:6.0%}")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
