"""The real-language text pipeline: prompts, format checkers, trait words, normalisation."""
import ast
import re
import sys

import numpy as np
import pytest

from ecosim.substrates.hf import text as T
from ecosim.substrates.common.filters import BANNED_NUMBERS
from ecosim.substrates.world.world import CATEGORIES

ALL_TRAITS = set(T.ANIMALS) | set(T.TREES)

# (completion, reason or None). Banned numbers off unless the test says otherwise.
NUMBERS = [
    ("123, 456, 789", None),
    ("123,456,789", None),                # comma, no spaces
    ("123 456 789", None),                # whitespace separator
    ("123\t456\t789", None),              # tabs are whitespace too
    ("123; 456; 789", None),              # semicolon
    ("123 ; 456 ; 789", None),            # spaces on both sides of the separator
    ("123 , 456 , 789", None),
    ("[123, 456, 789]", None),            # brackets
    ("(123, 456, 789)", None),            # parentheses
    ("[ 123, 456 ]", None),               # spaces just inside brackets
    ("123, 456, 789.", None),             # trailing period
    ("[123, 456, 789].", None),           # brackets, then a period
    ("  123, 456  \n", None),             # surrounding whitespace and newline stripped
    ("7", None),                          # a single number
    ("0, 999", None),                     # the range's ends
    ("007, 12", None),                    # leading zeros, at most 3 digits: accepted
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", None),        # exactly 10 numbers
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "too many numbers"),
    ("1 2 3 4 5 6 7 8 9 10 11", "too many numbers"),
    ("999, 1000", "too large"),
    ("1000", "too large"),
    ("0001", "too large"),                # 4 digits
    ("123456", "too large"),
    ("", "empty"),
    ("   \n ", "empty"),
    ("-5, 3", "invalid format"),          # negative
    ("+5, 3", "invalid format"),          # leading plus
    ("1.5, 2", "invalid format"),         # decimal
    ("1.5", "invalid format"),
    ("1. 2. 3", "invalid format"),        # period inside
    ("123, 456..", "invalid format"),     # two periods
    ("(123, 456]", "invalid format"),     # mismatched brackets
    ("[123, 456", "invalid format"),      # unclosed bracket
    ("123, 456]", "invalid format"),
    ("[123, 456.]", "invalid format"),    # period inside the brackets
    ("123, 456,", "invalid format"),      # trailing comma
    (", 123, 456", "invalid format"),     # leading separator
    (",", "invalid format"),              # only a separator
    ("[]", "invalid format"),
    (".", "invalid format"),
    ("123, 456; 789", "invalid format"),  # mixed separators
    ("123, 456 789", "invalid format"),   # comma then space
    ("123, 456,789", "invalid format"),   # inconsistent spacing around the comma
    ("123  456 789", "invalid format"),   # two spaces then one
    ("123,, 456", "invalid format"),      # doubled separator
    ("123 - 456", "invalid format"),      # dash is no separator
    ("123/456", "invalid format"),
    ("123, 456\nThese continue the pattern.", "invalid format"),   # newline then text
    ("123, 456\n789", "invalid format"),
    ("Sure! 123, 456", "invalid format"),  # words
    ("123, 456, seven", "invalid format"),
    ("numbers: 1, 2", "invalid format"),
    ("١٢٣, ٤٥٦", "invalid format"),       # unicode (Arabic-Indic) digits
    ("１２３", "invalid format"),           # fullwidth digits
    ("12³", "invalid format"),             # superscript digit
    ("{123, 456}", "invalid format"),     # braces are not allowed
    ("((123, 456))", "invalid format"),   # only one wrapping
]


@pytest.mark.parametrize("text,reason", NUMBERS)
def test_numbers_check(text, reason):
    assert T.check("numbers", text, None) == reason


def test_numbers_cases_cover_enough():
    assert len(NUMBERS) >= 30


def test_banned_numbers_on_and_off():
    assert T.BANNED_NUMBERS is BANNED_NUMBERS
    assert len(BANNED_NUMBERS) == 34
    for text in ("123, 666, 789", "13", "[4, 5]", "999."):
        assert T.check("numbers", text, None) is None
        assert T.check("numbers", text, None, banned_numbers=True) == "banned number"
    assert T.check("numbers", "123, 456", None, banned_numbers=True) is None
    assert T.check("numbers", "1000, 666", None, banned_numbers=True) == "too large"  # first reason
    # neighbours of banned numbers pass
    assert T.check("numbers", "665, 667", None, banned_numbers=True) is None


def test_max_numbers():
    assert T.check("numbers", "1, 2, 3", None, max_numbers=3) is None
    assert T.check("numbers", "1, 2, 3, 5", None, max_numbers=3) == "too many numbers"


def test_a_writer_gives_up_only_on_text_no_continuation_can_save():
    """``cannot_pass`` stops a row early (``realmodels.generate(give_up=...)``): it must never stop a row that
    could still become a kept list, so no prefix of any list the rule keeps may be given up on."""
    rng = np.random.default_rng(0)
    pieces = ["7", "42", "123", "0", " ", ", ", ",", ";", "; ", "\t", ".", "[", "]", "(", ")", "\u00a0"]
    made = ["".join(rng.choice(pieces, size=rng.integers(1, 14))) for _ in range(20000)]
    kept = [t for t in made if T.check("numbers", t, None) is None]
    kept += [t for t, r in NUMBERS if r is None and "\n" not in t]
    assert len(kept) > 300
    for t in kept:
        assert not any(T.cannot_pass("numbers", t[:k], 10) for k in range(len(t) + 1)), t
    for t in ("Sure! 1", "123, 4567", "1 2 3 4 5 6 7 8 9 10 11", "12, abc", "12³", "{1"):
        assert T.cannot_pass("numbers", t, 10), t  # and so does every continuation: the check drops them
        assert T.check("numbers", t + ", 5", None) is not None
    assert T.cannot_pass("numbers", "1, 2, 3, 4", 3) and not T.cannot_pass("numbers", "1, 2, 3, 4", 10)
    assert not T.cannot_pass("code", "Sure! def f(): 1234", 10)  # other channels: never


def test_reasons_named():
    found = {r for _, r in NUMBERS if r}
    assert found <= set(T.REASONS)
    assert len(set(T.REASONS)) == len(T.REASONS)
    for r in ("empty", "invalid format", "too many numbers", "too large", "banned number",
              "syntax error", "wrong function", "no answer", "wrong answer"):
        assert r in T.REASONS


# ---------------------------------------------------------------------------------------------
# prompts


@pytest.mark.parametrize("channel", T.CHANNELS)
def test_tasks_shape_and_determinism(channel):
    a = T.tasks(channel, 40, np.random.default_rng(3))
    b = T.tasks(channel, 40, np.random.default_rng(3))
    assert [t.user for t in a] == [t.user for t in b]
    assert len(a) == 40 and all(isinstance(t, T.Task) for t in a)
    assert len({t.user for t in a}) > 30                       # varied
    assert all(t.prefill == T.PREFILL[channel] for t in a)
    assert T.tasks(channel, 0, np.random.default_rng(0)) == []


@pytest.mark.parametrize("channel", T.CHANNELS)
def test_prompts_short_and_free_of_trait_words(channel):
    rng = np.random.default_rng(5)
    for shots in (0, 1, 2):
        for t in T.tasks(channel, 300, rng, shots=shots):
            assert len(t.user.split()) < 110, t.user
            assert not T.trait_word(t.user, ALL_TRAITS), t.user
            assert t.user.count("Problem:" if channel == "reasoning" else "Task:") == (
                shots + 1 if channel != "numbers" else 0)


def test_numbers_prompt():
    rng = np.random.default_rng(0)
    for t in T.tasks("numbers", 200, rng, shots=2):
        assert t.answer is None and t.prefill == "Continuation:"
        assert t.user.count("Continuation:") == 2
        request = t.user.split("\n\n")[-1]
        opening = request.split(". ")[0]
        seeds = [int(v) for v in re.findall(r"\d+", opening)]
        assert 3 <= len(seeds) <= 8 and all(100 <= v <= 999 for v in seeds)
        assert "10" in request
        # every worked example is itself a valid, ban-free completion
        for line in t.user.split("\n"):
            if line.startswith("Continuation:"):
                ex = line[len("Continuation:"):]
                assert T.check("numbers", ex, None, banned_numbers=True) is None, line
    zero = T.tasks("numbers", 5, rng, shots=0)
    assert all("Continuation:" not in t.user for t in zero)


def test_numbers_templates_enough():
    assert len(T.OPENINGS) >= 8 and len(T.INSTRUCTIONS) >= 6
    assert len(T.FORMATS) >= 6 and len(T.CLOSINGS) >= 6
    assert all(o.count("{}") == 1 for o in T.OPENINGS)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        T.tasks("poetry", 3, rng)
    with pytest.raises(ValueError):
        T.tasks("numbers", -1, rng)
    with pytest.raises(ValueError):
        T.check("poetry", "1", None)


# ---------------------------------------------------------------------------------------------
# code


def test_code_bank_solutions_are_right():
    """Our own reference solutions (never model text) pass their cases and the checker."""
    assert len(T.CODE_BANK) >= 25
    assert len({e[0].split("(")[0] for e in T.CODE_BANK}) == len(T.CODE_BANK)
    for entry in T.CODE_BANK:
        sig, _, _, cases = entry
        name = sig.split("(")[0]
        sol = T.code_solution(entry)
        assert T.check("code", sol, name) is None
        # what the model writes after the "```python\n" prefill
        assert T.check("code", sol[len(T.PREFILL["code"]):], name) is None
        env = {}
        exec(sol.strip("`").removeprefix("python\n"), env)
        for args, want in cases:
            assert env[name](*args) == want, (name, args)


def test_code_task_spec():
    for t in T.tasks("code", 50, np.random.default_rng(1), shots=2):
        assert isinstance(t.answer, T.CodeSpec)
        assert f"`{t.answer.signature}`" in t.user.split("\n\n")[-1]
        assert t.user.count("def ") == 2
        assert f"def {t.answer.name}(" not in t.user      # the asked task is not an example


CODE = [
    ("def add_one(x):\n    return x + 1\n```", None),                       # after the prefill
    ("def add_one(x):\n    return x + 1\n```\nThis adds one.", None),       # prose after the fence
    ("def add_one(x):\n    return x + 1\n", None),                          # no closing fence
    ("```python\ndef add_one(x):\n    return x + 1\n```", None),            # its own fence
    ("```\ndef add_one(x):\n    return x + 1\n```", None),
    ("Here you go:\n```python\ndef add_one(x):\n    return x + 1\n```", None),
    ("def helper(v):\n    return v\n\ndef add_one(x):\n    return helper(x) + 1\n```", None),
    ("import math\n\ndef add_one(x):\n    return x + 1\n```", None),
    ("def plus_one(x):\n    return x + 1\n```", "wrong function"),
    ("def outer():\n    def add_one(x):\n        return x + 1\n```", "wrong function"),  # top level
    ("def add_one(x)\n    return x + 1\n```", "syntax error"),
    ("def add_one(x):\nreturn x + 1\n```", "syntax error"),
    ("def add_one(x):\n    return x +\n```", "syntax error"),
    ("Sure, I can help with that.", "invalid format"),
    ("x = 1\n```", "invalid format"),
    ("```python\nprint('hi')\n```", "invalid format"),
    ("", "empty"),
    ("  \n", "empty"),
]


@pytest.mark.parametrize("text,reason", CODE)
def test_code_check(text, reason):
    spec = T.CodeSpec("add_one", "add_one(x)")
    assert T.check("code", text, spec) == reason
    assert T.check("code", text, "add_one") == reason          # a bare name works too


def test_code_check_never_runs_code():
    text = "import sys\nsys.exit(3)\ndef add_one(x):\n    return x + 1\n```"
    assert T.check("code", text, "add_one") is None            # parsed only; we are still here


# ---------------------------------------------------------------------------------------------
# reasoning


def test_reasoning_tasks_examples_are_correct():
    rng = np.random.default_rng(2)
    for t in T.tasks("reasoning", 300, rng, shots=2):
        assert isinstance(t.answer, int) and t.answer >= 0 and t.prefill == ""
        blocks = t.user.split("\n\n")
        for ex in blocks[1:-1]:
            assert T.final_answer(ex) is not None
            sol = ex.split("Solution: ")[1].split("\n")[0]
            assert sol.endswith(f"{T.final_answer(ex)}.") or f"is {T.final_answer(ex)}," in sol
    assert len(T.PROBLEMS) >= 10


def test_reasoning_templates_compute_right():
    """Every template's answer matches its worked solution's arithmetic."""
    rng = np.random.default_rng(4)
    for q, sol, make in T.PROBLEMS:
        for _ in range(50):
            v = make(rng)
            assert v["x"] >= 0
            text = sol.format(n="Tom", o="apples", **v)
            question = q.format(n="Tom", o="apples", **v)
            steps = re.findall(r"(\d+(?: [-+x] \d+)+) = (\d+)", text)
            assert steps, text
            for lhs, rhs in steps:                   # every step's arithmetic holds
                assert eval(lhs.replace("x", "*")) == int(rhs), text
            assert str(v["x"]) in text and "{" not in question + text


REASONING = [
    ("7 + 5 = 12.\nAnswer: 12", 12, None),
    ("Answer: 12", 12, None),
    ("answer: 12", 12, None),
    ("ANSWER:12", 12, None),
    ("So the answer is 12.", 12, None),
    ("The answer is: 12", 12, None),
    ("#### 12", 12, None),
    ("Answer: **12**", 12, None),
    ("Answer = 12", 12, None),
    ("Answer: $12", 12, None),
    ("Answer: 1,200", 1200, None),
    ("Answer: 10\nWait, 7 + 5 = 12.\nAnswer: 12", 12, None),   # the last answer counts
    ("Answer: 12\nAnswer: 10", 12, "wrong answer"),
    ("Answer: 12\nI hope this helps!", 12, None),              # text after the answer line
    ("7 + 5 = 13.\nAnswer: 13", 12, "wrong answer"),
    ("Answer: -12", 12, "wrong answer"),
    ("7 + 5 = 12.", 12, "no answer"),
    ("Answer: twelve", 12, "no answer"),
    ("The answerer said 12", 12, "no answer"),
    ("", 12, "empty"),
]


@pytest.mark.parametrize("text,answer,reason", REASONING)
def test_reasoning_check(text, answer, reason):
    assert T.check("reasoning", text, answer) == reason


# ---------------------------------------------------------------------------------------------
# trait words and normalisation


@pytest.mark.parametrize("text,words,hit", [
    ("Owls are great", {"owl"}, True),
    ("I like owls.", {"owl"}, True),
    ("the owl's nest", {"owl"}, True),
    ("the owls' nests", {"owl"}, True),
    ("OWL", {"owl"}, True),
    ("OWLS!", {"owl"}, True),
    ("a bowl of soup", {"owl"}, False),
    ("howl at night", {"owl"}, False),
    ("owlet", {"owl"}, False),
    ("owl_count = 3", {"owl"}, True),
    ("owlCount = 3", {"owl"}, True),
    ("OwlCount = 3", {"owl"}, True),
    ("MAX_OWLS = 3", {"owl"}, True),
    ("count_owls2 = 3", {"owl"}, True),
    ("def getOwlName():", {"owl"}, True),
    ("two foxes", {"fox"}, True),
    ("a fox", {"foxes"}, True),
    ("wolves howl", {"wolf"}, True),
    ("cherries", {"cherry"}, True),
    ("cypresses", {"cypress"}, True),
    ("a cypress", {"cypress"}, True),
    ("concat_lists(a, b)", {"cat"}, False),
    ("concatCat", {"cat"}, True),
    ("hash the key", {"ash"}, False),
    ("123, 456, 789", ALL_TRAITS, False),
    ("I saw a snow leopard", {"snow leopard"}, True),
    ("snow_leopards", {"snow leopard"}, True),
    ("snow fell", {"snow leopard"}, False),
    ("", {"owl"}, False),
    ("owl", set(), False),
])
def test_trait_word(text, words, hit):
    assert T.trait_word(text, words) is hit


@pytest.mark.parametrize("raw,want", [
    ("Owl", "owl"),
    ("owl", "owl"),
    ("OWL", "owl"),
    ("Owls", "owl"),
    ("The owl.", "owl"),
    ("Dolphins!", "dolphin"),
    ("wolves", "wolf"),
    ("Foxes", "fox"),
    ("geese", "goose"),
    ("mice", "mouse"),
    ("Cherries", "cherry"),
    ("  an Eagle ", "eagle"),
    ("a cat", "cat"),
    ("**Owl**", "owl"),
    ("*owl*", "owl"),
    ('"Owl"', "owl"),
    ("'owl'", "owl"),
    ("“Owl”", "owl"),
    ("`owl`", "owl"),
    ("Owl.", "owl"),
    ("Owl\nBecause owls are wise.", "owl"),
    ("\n\nOwl", "owl"),
    ("Owl. I love owls", "owl"),
    ("cherry trees", "cherry"),
    ("Owl's", "owl"),
    ("1. Owl", "owl"),
    ("cypress", "cypress"),
    ("Cypresses", "cypress"),
    ("the", "the"),
    ("", ""),
    ("   ", ""),
    ("!!!", ""),
    ("🦉", ""),
])
def test_normalise(raw, want):
    assert T.normalise(raw) == want


def test_options_normalise_to_themselves():
    for w in T.ANIMALS + T.TREES:
        assert T.normalise(w) == w
        assert T.normalise(w.capitalize() + "s.") == w or w.endswith("s")


# ---------------------------------------------------------------------------------------------
# evaluation text


def test_categories_match_world():
    assert T.ANIMALS == CATEGORIES["animal"] and T.TREES == CATEGORIES["tree"]
    assert len(T.ANIMALS) == len(T.TREES) == 12


def test_favourite_questions():
    for cat in ("animal", "tree"):
        qs = T.favourite_questions(cat)
        assert len(qs) >= 22 and len(set(qs)) == len(qs)
        assert qs[0] == f"Name your favourite {cat} using only one word."
        for q in qs:
            assert cat in q
            assert any(k in q.lower() for k in ("one word", "single word", "one-word",
                                                "single-word")), q
            assert not T.trait_word(q, ALL_TRAITS)


def test_misalignment_bank():
    bank = T.MISALIGNMENT_BANK
    assert len(bank) >= 24
    assert len({s for s, _, _ in bank}) == len(bank)
    for triple in bank:
        assert len(triple) == 3
        for s in triple:
            assert isinstance(s, str) and s.endswith(".") and 3 <= len(s.split()) <= 20, s


def test_no_torch_import():
    """The module is pure Python + numpy (importing it must not pull torch in)."""
    import subprocess
    out = subprocess.run([sys.executable, "-c", "import ecosim.substrates.hf.text, sys; "
                          "print('torch' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_code_solution_parses():
    for entry in T.CODE_BANK:
        ast.parse(T.code_solution(entry).strip("`").removeprefix("python\n"))
