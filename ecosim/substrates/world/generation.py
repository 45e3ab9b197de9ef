"""Batched sampling with the KV cache and a seeded torch.Generator (never the global RNG).

The cache goes in and comes out under transformers 5's name, ``cache`` (``forward(cache=...)``,
``output.cache``); ``past_key_values`` is deprecated in both places (removal announced for 5.40)."""
from __future__ import annotations

import torch

from ecosim.substrates.world.world import BOS, EOS, PAD, World


@torch.no_grad()
def sample(model, world: World, prompts: list[str], max_new: int, temperature: float = 1.0,
           seed: int = 0, batch: int = 512) -> list[tuple[str, bool]]:
    """Sample one completion per prompt. Returns (text, finished) pairs; ``finished`` is False when
    the model hit ``max_new`` tokens without writing EOS."""
    dev = model.device
    g = torch.Generator(device=dev).manual_seed(seed)
    bos, eos, pad = world.ids[BOS], world.ids[EOS], world.ids[PAD]
    out: list[tuple[str, bool]] = []
    for start in range(0, len(prompts), batch):
        enc = [[bos] + world.encode(p) for p in prompts[start:start + batch]]
        L = max(map(len, enc))
        ids = torch.tensor([[pad] * (L - len(e)) + e for e in enc], device=dev)
        attn = torch.tensor([[0] * (L - len(e)) + [1] * len(e) for e in enc], device=dev)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        res = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
        done = torch.zeros(len(enc), dtype=torch.bool, device=dev)
        gen = []
        for _ in range(max_new):
            probs = torch.softmax(res.logits[:, -1].float() / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=g).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            gen.append(nxt)
            done |= nxt == eos
            if bool(done.all()):
                break
            attn = torch.cat([attn, attn.new_ones(len(enc), 1)], 1)
            pos = pos[:, -1:] + 1
            res = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos,
                        cache=res.cache, use_cache=True)
        toks = torch.stack(gen, 1).tolist() if gen else [[] for _ in enc]
        for row in toks:
            finished = eos in row
            row = row[: row.index(eos)] if finished else row
            out.append((world.decode(row), finished))
    return out
