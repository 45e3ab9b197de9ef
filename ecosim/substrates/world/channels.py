"""Channels: how a model writes data for its successors. Sampled-text channels (numbers, code,
reasoning traces) return (prompt, completion, finished) triples whose prompt carries the neutral
system slot: the teacher's persona, if any, is used while writing and never stored. The logit
channel attaches the teacher's soft labels to text, with banned tokens masked and renormalised."""
from __future__ import annotations

import torch

from ecosim.engine import seeds
from ecosim.substrates.world.generation import sample
from ecosim.substrates.world.models import target_logits
from ecosim.substrates.common.training import pad_batch, encode_pairs
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
        p = torch.softmax(logits.float(), -1)
        gone = p[:, banned_ids].sum(-1)
        removed.append(gone)
        p[:, banned_ids] = 0.0
        p = p / p.sum(-1, keepdim=True)
        counts = mask[:, 1:].sum(-1).tolist()
        if top_k is None:  # the full distribution: no indices to store
            for pi in p.split(counts):
                labels.append((None, pi.to(torch.float16).cpu()))
            continue
        prob, idx = p.topk(top_k, -1)
        prob = prob / prob.sum(-1, keepdim=True)
        for pi, ii in zip(prob.split(counts), idx.split(counts)):
            labels.append((ii.to(torch.int32).cpu(), pi.to(torch.float16).cpu()))
    return labels, float(torch.cat(removed).mean().cpu()) if removed else 0.0
