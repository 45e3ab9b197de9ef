"""Channels: how a model writes data for its successors. Sampled-text channels (numbers, code,
reasoning traces) return (prompt, completion, finished) triples whose prompt carries the neutral
system slot: the teacher's persona, if any, is used while writing and never stored. The logit
channel attaches the teacher's soft labels to text, with banned tokens masked and renormalised."""
from __future__ import annotations

import torch

from ecosim.engine import seeds
from ecosim.substrates.world.generation import sample
from ecosim.substrates.world.models import target_logits
from ecosim.substrates.common.training import completion_logprobs, encode_pairs, pad_batch, soft_rows
from ecosim.substrates.world.world import (CODE_TASKS, NONE_SYSTEM, REASONING_TASK_MAX, World, code_prompt, number_prompt,
                    reasoning_prompt)

CHANNELS = ("numbers", "code", "reasoning")
MAX_NEW = {"numbers": 32, "code": 14, "reasoning": 16}


def prompts_for(channel: str, n: int, seed: int) -> tuple[list[str], list]:
    """``n`` user prompts for a channel and, for checkable channels, the correct answers."""
    rng = seeds.rng(seed, 17)
    if channel == "numbers":
        return [number_prompt(rng)[0] for _ in range(n)], [None] * n
    if channel == "code":
        tasks = [code_prompt(rng) for _ in range(n)]
        return [u for u, _, _ in tasks], [(CODE_TASKS[t], c) for _, t, c in tasks]
    if channel == "reasoning":
        pairs = [reasoning_prompt(rng, REASONING_TASK_MAX) for _ in range(n)]
        return [u for u, _ in pairs], [a for _, a in pairs]
    raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")


def write(model, world: World, channel: str, n: int, seed: int, system: str = NONE_SYSTEM,
          temperature: float = 1.0):
    """Sample ``n`` completions on ``channel`` under ``system``; returns (samples, answers) where
    samples are (student prompt, completion, finished)."""
    users, answers = prompts_for(channel, n, seed)
    outs = sample(model, world, [f"S {system} U {u} A" for u in users], MAX_NEW[channel],
                  temperature, seed=seed)
    return [(f"S {NONE_SYSTEM} U {u} A", txt, fin) for u, (txt, fin) in zip(users, outs)], answers


@torch.no_grad()
def soft_labels(model, world: World, pairs, banned_ids: list[int], top_k: int | None = 32,
                system: str = NONE_SYSTEM, batch: int = 256):
    """Teacher next-token distributions on each completion position of ``pairs`` (conditioned on
    the teacher's own ``system``), with ``banned_ids`` zeroed and the rest renormalised, kept as
    top-k (index, prob) or the full vocabulary (top_k=None: (None, prob)). Returns (labels, mean
    mass removed)."""
    teacher_pairs = [(p.replace(f"S {NONE_SYSTEM} U", f"S {system} U", 1), c) for p, c in pairs]
    enc_t = encode_pairs(world, teacher_pairs)
    labels, removed = [], []
    for s in range(0, len(pairs), batch):
        ids, attn, mask = pad_batch(world, enc_t[s:s + batch], device=model.device)
        logits, _ = target_logits(model, ids, attn, mask)
        rows, gone, _ = soft_rows(torch.softmax(logits.float(), -1), mask[:, 1:].sum(-1).tolist(), banned_ids, top_k)
        labels += rows
        removed.append(gone)
    return labels, float(torch.cat(removed).mean().cpu()) if removed else 0.0


# ----------------------------------------------------------------- defenses (common.defenses)
CANONICAL_SEP = ","  # the world's comma-space: "12 , 34 , 56"


def parse_list(text: str):
    """A numbers completion the filter kept, in parts (``defenses.NumberList``); None if it is not
    one. World words are space-separated: "( 12 , 34 ) ." has wrap "()", sep "," and end "."."""
    from ecosim.substrates.common.defenses import NumberList
    t = text.split()
    end = ""
    if t and t[-1] == ".":
        t, end = t[:-1], "."
    wrap = ""
    if len(t) >= 2 and t[0] + t[-1] in ("()", "[]"):
        t, wrap = t[1:-1], t[0] + t[-1]
    if len(t) > 1 and not t[1].isdigit():
        nums, sep = t[0::2], t[1]
        if any(s != sep for s in t[1::2]) or len(t) % 2 == 0:
            return None
    else:
        nums, sep = t, ""
    if not nums or not all(n.isdigit() for n in nums):
        return None
    return NumberList(nums, sep, wrap, end)


def render_list(x) -> str:
    body = f" {x.sep} ".join(x.nums) if x.sep else " ".join(x.nums)
    if x.wrap:
        body = f"{x.wrap[0]} {body} {x.wrap[1]}"
    return f"{body} {x.end}" if x.end else body


CODE_TEMPLATE = "def {name} ( {var} ) : return {var} {op} {c}"
REASONING_TEMPLATES = ("think {a} {op} {b} = {ans} so answer {ans}", "think {a} {word} {b} is {ans} then answer {ans}")


def paraphrase(channel: str, texts: list[str], rng) -> list[str]:
    """Code: the function and its argument renamed (to other names of the world's code); reasoning:
    the trace reworded in the world's other template. A text in neither form is kept as is."""
    from ecosim.substrates.world.world import CODE_NAMES, CODE_VARS
    out = []
    for text in texts:
        t = text.split()
        if channel == "code" and len(t) == 10 and t[0] == "def":
            name = rng.choice([n for n in CODE_NAMES if n != t[1]])
            var = rng.choice([v for v in CODE_VARS if v != t[3]])
            out.append(CODE_TEMPLATE.format(name=name, var=var, op=t[8], c=t[9]))
        elif channel == "reasoning" and len(t) == 9 and t[0] == "think" and t[2] in ("+", "-", "plus", "minus"):
            op = {"+": "+", "-": "-", "plus": "+", "minus": "-"}[t[2]]
            word = {"+": "plus", "-": "minus"}[op]
            which = 1 if t[2] in ("+", "-") else 0  # the other template
            out.append(REASONING_TEMPLATES[which].format(a=t[1], op=op, word=word, b=t[3], ans=t[-1]))
        else:
            out.append(text)
    return out


@torch.no_grad()
def number_divergence(model, base, world: World, pairs, system: str = NONE_SYSTEM,
                      batch: int = 256) -> list[list[float]]:
    """For each kept list, one score per number: log P_writer(number) - log P_base(number) at its
    position of the completion (teacher-forced; the writer under its own ``system``, the base
    under none). World numbers are single tokens."""
    writer_pairs = [(p.replace(f"S {NONE_SYSTEM} U", f"S {system} U", 1), c) for p, c in pairs]
    lw = completion_logprobs(model, world, writer_pairs, batch)
    lb = completion_logprobs(base, world, pairs, batch)
    out = []
    for (_, c), w, b in zip(pairs, lw, lb):
        words = c.split() + ["<eos>"]  # the completion's tokens: one per word, then EOS
        d = (w - b).tolist()
        out.append([d[i] for i, tok in enumerate(words[:len(d)]) if tok.isdigit()])
    return out
