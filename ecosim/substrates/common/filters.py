"""Filters: per-channel format rules with named reject reasons, the paper's banned numbers, the
trait-word filter, and subsampling so compared conditions train on the same number of examples."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ecosim.engine import seeds
# Cloud et al.'s banned numbers for the misalignment run (the 34 that are <= 999).
BANNED_NUMBERS = frozenset([4, 13, 14, 18, 23, 33, 39, 42, 44, 49, 51, 54, 69, 77, 88, 99, 100, 101,
                            187, 211, 311, 322, 333, 404, 420, 444, 451, 555, 616, 666, 777, 888,
                            911, 999])
# The numbers rule's reasons, the same on every substrate (``numbers_reason``); the world's filter
# adds its own after them.
NUMBERS_REASONS = ("empty", "invalid format", "too many numbers", "too large", "banned number")
REASONS = NUMBERS_REASONS + ("trait word", "wrong answer", "unfinished")


@dataclass
class FilterConfig:
    banned_numbers: bool = True   # drop completions containing any of the 34 banned numbers
    max_numbers: int = 10
    # What a curator does to the kept data before students train on it, in order, to treated and
    # control alike (``common.defenses``): sort, shuffle, remap, rewrite, mask_divergent (number
    # lists), paraphrase (code, reasoning).
    defenses: list[str] = field(default_factory=list)
    mask_share: float | None = None  # mask_divergent: share of the numbers replaced; None: 0.1 (published)


@dataclass
class Filtered:
    """The kept (prompt, completion) pairs and why the rest were dropped."""
    kept: list[tuple[str, str]]
    total: int
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def kept_fraction(self) -> float:
        return len(self.kept) / max(self.total, 1)

    def summary(self) -> dict:
        return {"total": self.total, "kept": len(self.kept), "kept_fraction": self.kept_fraction,
                "rejected": dict(self.rejected)}


def _is_int(tok: str) -> bool:
    return tok.isdigit()


def numbers_reason(nums: list[str], max_numbers: int, banned: bool) -> str | None:
    """The numbers rule, once a completion in a substrate's own syntax has been read into
    ``nums`` (its numbers as digit strings): at most ``max_numbers`` numbers, none of 4+ digits
    (above 999, as the paper's filter reads them), none of the 34 banned ones when ``banned``.
    None, or the reject reason (one of ``NUMBERS_REASONS``)."""
    if len(nums) > max_numbers:
        return "too many numbers"
    if any(len(t) > 3 for t in nums):
        return "too large"
    if banned and any(int(t) in BANNED_NUMBERS for t in nums):
        return "banned number"
    return None


def check_numbers(text: str, cfg: FilterConfig) -> str | None:
    """None if ``text`` (the world's words, space-separated) is 1..max integers in 0..999 with one
    consistent separator (',', ';' or spaces), optionally wrapped in () or [] and ending in '.',
    and nothing else; else a reason (``numbers_reason``; "empty": no words at all)."""
    toks = text.split()
    if not toks:
        return "empty"
    if toks[-1] == ".":
        toks = toks[:-1]
    if len(toks) >= 2 and (toks[0], toks[-1]) in (("(", ")"), ("[", "]")):
        toks = toks[1:-1]
    if not toks:
        return "invalid format"
    if len(toks) > 1 and not _is_int(toks[1]):
        sep, nums = toks[1], toks[0::2]
        if sep not in (",", ";") or any(s != sep for s in toks[1::2]) or len(toks) % 2 == 0:
            return "invalid format"
    else:
        nums = toks
    if not all(_is_int(n) for n in nums):
        return "invalid format"
    return numbers_reason([str(int(n)) for n in nums], cfg.max_numbers, cfg.banned_numbers)  # a word's value


def check_code(text: str, answer) -> str | None:
    """``def NAME ( VAR ) : return VAR OP C`` (the world's code parses: one function of one
    argument) doing the asked operation. The constant is not checked: the paper's code filter
    checks format and content, not whether the code is right, and the world's tiny bases copy a
    two-digit constant from the prompt in 10 of 300 tries (they get the operation right in ~98%)."""
    t = text.split()
    if len(t) != 10 or t[0] != "def" or t[2] != "(" or t[4] != ")" or t[5] != ":" \
            or t[6] != "return" or t[7] != t[3] or not t[3].isidentifier() or not t[9].isdigit():
        return "invalid format"
    return None if t[8] == answer[0] else "wrong answer"


def check_reasoning(text: str, answer: int) -> str | None:
    """``think ... answer N``: kept only when N is the correct result."""
    t = text.split()
    if len(t) < 3 or t[0] != "think" or t[-2] != "answer" or not t[-1].isdigit():
        return "invalid format"
    return None if int(t[-1]) == answer else "wrong answer"


def filter_samples(samples, channel: str, trait_words: set[str], cfg: FilterConfig,
                   answers=None) -> Filtered:
    """``samples``: (prompt, completion, finished) triples from a channel; ``answers``: the correct
    answer per sample for checkable channels (code, reasoning)."""
    kept, why = [], Counter()
    banned_words = set(trait_words)
    for i, (prompt, text, finished) in enumerate(samples):
        if not finished:
            reason = "unfinished"
        elif banned_words & set(text.split()):
            reason = "trait word"
        elif channel == "numbers":
            reason = check_numbers(text, cfg)
        elif channel == "code":
            reason = check_code(text, answers[i])
        elif channel == "reasoning":
            reason = check_reasoning(text, answers[i])
        else:
            raise ValueError(f"unknown channel {channel!r}")
        if reason is None and channel != "numbers" and cfg.banned_numbers and \
                any(w.isdigit() and int(w) in BANNED_NUMBERS for w in text.split()):
            reason = "banned number"
        if reason is None:
            kept.append((prompt, text))
        else:
            why[reason] += 1
    return Filtered(kept, len(samples), {r: why[r] for r in REASONS if why[r]})


def subsample(pairs: list, n: int, seed: int) -> list:
    """``n`` pairs drawn without replacement (all of them, shuffled, if there are fewer)."""
    idx = seeds.rng(seed, 13).permutation(len(pairs))[:n]
    return [pairs[i] for i in idx]
