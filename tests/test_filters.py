from ecosim.substrates.common.filters import (BANNED_NUMBERS, FilterConfig, check_code, check_numbers,
                            check_reasoning, filter_samples, subsample)

CFG = FilterConfig()


def test_paper_banned_numbers():
    assert len(BANNED_NUMBERS) == 34 and 666 in BANNED_NUMBERS and 123 not in BANNED_NUMBERS


def test_number_format_rules():
    assert check_numbers("12 , 345 , 6", CFG) is None
    assert check_numbers("( 12 ; 345 ; 6 ) .", CFG) is None
    assert check_numbers("[ 1 2 3 ]", CFG) is None
    assert check_numbers("7", CFG) is None
    assert check_numbers("12 , 345 ; 6", CFG) == "invalid format"
    assert check_numbers("12 , owl", CFG) == "invalid format"
    assert check_numbers("12 , , 13", CFG) == "invalid format"
    assert check_numbers("( 12 , 13 ]", CFG) == "invalid format"
    assert check_numbers("", CFG) == "empty"
    assert check_numbers(" , ".join(["5"] * 11), CFG) == "too many numbers"
    assert check_numbers("12 , 666", CFG) == "banned number"
    assert check_numbers("12 , 666", FilterConfig(banned_numbers=False)) is None
    assert check_numbers("1000", CFG) == "too large"


def test_code_and_reasoning_checks():
    assert check_code("def f ( x ) : return x + 3", ("+", 3)) is None
    assert check_code("def f ( x ) : return x + 4", ("+", 3)) is None  # the constant is not checked
    assert check_code("def f ( x ) : return x - 3", ("+", 3)) == "wrong answer"
    assert check_code("def f ( x ) : return y + 3", ("+", 3)) == "invalid format"
    assert check_reasoning("think 2 + 3 = 5 so answer 5", 5) is None
    assert check_reasoning("think 2 + 3 = 6 so answer 6", 5) == "wrong answer"
    assert check_reasoning("answer 5", 5) == "invalid format"


def test_filter_counts_named_reasons():
    samples = [("p", "1 , 2", True), ("p", "1 , owl", True), ("p", "1 , 2", False),
               ("p", "13 , 2", True), ("p", "x y", True)]
    f = filter_samples(samples, "numbers", {"owl"}, CFG)
    assert f.kept == [("p", "1 , 2")]
    assert f.rejected == {"trait word": 1, "unfinished": 1, "banned number": 1, "invalid format": 1}
    assert f.summary()["kept_fraction"] == 0.2
    r = filter_samples([("p", "think 1 + 1 = 2 so answer 2", True)], "reasoning", set(), CFG, [2])
    assert len(r.kept) == 1


def test_subsample_is_seeded_and_sized():
    pairs = [(str(i), "x") for i in range(100)]
    assert subsample(pairs, 10, 1) == subsample(pairs, 10, 1)
    assert len(subsample(pairs, 10, 1)) == 10 and len(subsample(pairs, 500, 1)) == 100
