"""The logits channel on real models: a writer's next-token distributions (soft labels) on every
completion position of its kept number lists, with trait tokens masked and the rest renormalised.

- Positions: the completion's tokens and its EOS, exactly those ``training.finetune`` puts loss
  on. The completion is tokenised on its own (``realmodels.encode``), so a student of the same
  tokenizer has the same completion positions whatever its template and system message.
- Trait tokens: every vocabulary token whose decoded text, lowercased and stripped of
  non-letters, contains a trait word (or is one's plural, e.g. "wolves"): " owl", " owls",
  "Owlet", but also "bowl" and "category" (conservative: a token that might carry the word goes).
- Support: ``vocab`` keeps the top k of the whole vocabulary (``data.logit_top_k``; None: full
  float16 rows, only for small datasets); ``list`` keeps only the tokens a number list can
  contain (``list_token_ids``) renormalised over them: nothing but number statistics passes.
Labels are (vocabulary index [T, k] int32 or None, prob [T, k] float16) per example."""
from __future__ import annotations

import torch

from ecosim.substrates.common.training import pad_batch, soft_rows, target_logits
from ecosim.substrates.hf import text

# Every character a kept number list can hold (``text.check``: digits, one separator of spaces,
# tabs, "," or ";", a () or [] wrap, a final "."): a token made of these alone can occur in one.
LIST_CHARS = frozenset("0123456789 \t,;.()[]")
_CACHE: dict[tuple, object] = {}


def _decoded(tok) -> list[str]:
    key = ("decoded", tok.name_or_path, len(tok))
    if key not in _CACHE:
        _CACHE[key] = tok.batch_decode([[i] for i in range(len(tok))])
    return _CACHE[key]


def trait_token_ids(tok, words) -> torch.Tensor:
    """Vocabulary ids whose decoded text, lowercased with every non-letter removed, contains one
    of ``words`` (spaces inside a word removed) or is one's plural (``text.singular``)."""
    ws = frozenset(w.lower().replace(" ", "") for w in words)
    key = ("trait", tok.name_or_path, len(tok), ws)
    if key not in _CACHE:
        out = []
        for i, d in enumerate(_decoded(tok)):
            letters = "".join(ch for ch in d.lower() if ch.isalpha())
            if letters and (any(w in letters for w in ws) or text.singular(letters) in ws):
                out.append(i)
        _CACHE[key] = torch.tensor(out, dtype=torch.long)
    return _CACHE[key]


# What a constrained decoder may write (``text.constrained``): digits, commas and spaces.
DECODE_CHARS = frozenset("0123456789, ")


def list_token_ids(tok, chars: frozenset = LIST_CHARS) -> torch.Tensor:
    """Vocabulary ids a number list can be written with: tokens made only of ``chars`` (by
    default ``LIST_CHARS``: single digits, separators, brackets, "." and their merges, as the
    tokenizer has them; ``DECODE_CHARS`` for constrained decoding) and EOS, which ends every
    completion."""
    key = ("list", tok.name_or_path, len(tok), chars)
    if key not in _CACHE:
        ids = {i for i, d in enumerate(_decoded(tok)) if d and set(d) <= chars}
        _CACHE[key] = torch.tensor(sorted(ids | {tok.eos_token_id}), dtype=torch.long)
    return _CACHE[key]


@torch.no_grad()
def soft_labels(model, codec, pairs: list[tuple[str, str]], trait_ids: torch.Tensor,
                list_ids: torch.Tensor | None = None, top_k: int | None = 32, batch: int = 8):
    """The writer's soft labels on (rendered prompt, completion) ``pairs`` (``codec``: its
    tokenizer's ``substrate.Codec``). Trait tokens are zeroed and the rest renormalised; with
    ``list_ids`` the distribution is restricted to those tokens and renormalised over them.
    ``top_k``: entries kept per position (None: all of the support; the full vocabulary is stored
    as float16 rows without indices). Returns (labels, mean trait mass removed, mean mass outside
    the list tokens or None)."""
    enc = codec.encode_pairs(pairs)
    labels, removed, outside = [], [], []
    for s in range(0, len(enc), batch):
        ids, attn, mask = pad_batch(codec, enc[s:s + batch], device=model.device)
        logits, _ = target_logits(model, ids, attn, mask)
        rows, gone, out = soft_rows(torch.softmax(logits.float(), -1), mask[:, 1:].sum(-1).tolist(),
                                    trait_ids, top_k, support=list_ids)
        labels += rows
        removed.append(gone.cpu())
        if out is not None:
            outside.append(out.cpu())
    return labels, _mean(removed), (_mean(outside) if list_ids is not None else None)


def _mean(xs: list) -> float:
    return float(torch.cat(xs).mean()) if xs else 0.0
