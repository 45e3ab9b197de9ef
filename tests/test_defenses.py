"""Defenses (``filter.defenses``): each on hand-written lists, in both substrates' syntax; a
defended list still passes the filter; treated and control get the same defenses; the dataset node
records what ran and the stored dataset is the defended one."""
import json
from collections import Counter

import numpy as np
import pytest

from ecosim.substrates.common import defenses as D
from ecosim.substrates.common.filters import BANNED_NUMBERS, FilterConfig, check_numbers
from ecosim.substrates.hf import text as T
from ecosim.substrates.world import channels as C

WORLD = ["12 , 34 , 5 .", "( 3 ; 2 ; 1 )", "7 8 9", "[ 900 , 12 , 12 ] .", "41 , 40"]
REAL = [" 123, 456, 789", "[12; 7]", " 1 2 3.", " 5", " 007, 10"]
SYNTAX = {"world": (WORLD, C.parse_list, C.render_list, C.CANONICAL_SEP, lambda t: check_numbers(t, FilterConfig())),
          "real": (REAL, T.parse_list, T.render_list, T.CANONICAL_SEP, lambda t: T._check_numbers(t, True, 10))}


def run(texts, syntax, defenses, seed=1, run_seed=0, **kw):
    _, parse, render, sep, _ = SYNTAX[syntax]
    return D.defend(texts, "numbers", FilterConfig(defenses=defenses), seed, run_seed, parse, render, sep, **kw)


def nums(texts, parse):
    return [[int(n) for n in parse(t).nums] for t in texts]


@pytest.mark.parametrize("syntax", sorted(SYNTAX))
def test_parse_render_round_trip(syntax):
    texts, parse, render, _, ok = SYNTAX[syntax]
    assert all(ok(t) is None for t in texts)  # the hand-written lists pass the filter
    assert [render(parse(t)) for t in texts] == texts


@pytest.mark.parametrize("syntax", sorted(SYNTAX))
def test_sort_and_shuffle_keep_the_multiset(syntax):
    texts, parse, *_ = SYNTAX[syntax]
    before = nums(texts, parse)
    for d in ("sort", "shuffle"):
        out, report = run(texts, syntax, [d])
        after = nums(out, parse)
        assert [Counter(a) for a in after] == [Counter(b) for b in before]
        if d == "sort":
            assert all(a == sorted(a) for a in after)
            assert report["sort"]["changed"] == sum(b != sorted(b) for b in before)
    # shuffling is seeded: the same stream gives the same lists, another one others
    long = [" , ".join(str(i) for i in range(1, 11))] if syntax == "world" else [", ".join(str(i) for i in range(1, 11))]
    assert run(long, syntax, ["shuffle"], seed=3)[0] == run(long, syntax, ["shuffle"], seed=3)[0]
    assert run(long, syntax, ["shuffle"], seed=3)[0] != run(long, syntax, ["shuffle"], seed=4)[0]


def test_remap_is_one_bijection_for_the_run():
    t = D.remap_table(0, banned=True)
    assert sorted(t) == list(range(1000))  # a bijection of 0..999
    banned = sorted(BANNED_NUMBERS)
    assert sorted(t[banned]) == banned  # banned numbers map among themselves: filters still pass
    assert not np.array_equal(t, np.arange(1000))
    assert np.array_equal(t, D.remap_table(0, banned=True))  # one table per run seed, whatever the dataset
    assert not np.array_equal(t, D.remap_table(1, banned=True))
    out1, _ = run(["12 , 34"], "world", ["remap"], seed=1)
    out2, _ = run(["34 , 12"], "world", ["remap"], seed=99)  # another dataset of the same run
    assert C.parse_list(out1[0]).nums == C.parse_list(out2[0]).nums[::-1]
    assert C.parse_list(out1[0]).nums == [str(t[12]), str(t[34])]


@pytest.mark.parametrize("syntax", sorted(SYNTAX))
def test_rewrite_gives_one_format(syntax):
    texts, parse, render, sep, _ = SYNTAX[syntax]
    out, _ = run(texts, syntax, ["rewrite"])
    for t, o in zip(texts, out):
        x = parse(o)
        assert (x.wrap, x.end) == ("", "") and (x.sep == sep or len(x.nums) == 1)
        assert [int(n) for n in x.nums] == [int(n) for n in parse(t).nums]
        assert o == render(D.NumberList([str(int(n)) for n in x.nums], sep, lead=x.lead))
    assert len({parse(o).sep for o in out if len(parse(o).nums) > 1}) == 1


@pytest.mark.parametrize("syntax", sorted(SYNTAX))
def test_defended_lists_still_pass_the_filter(syntax):
    texts, parse, _, _, ok = SYNTAX[syntax]
    rng = np.random.default_rng(0)
    for combo in (["sort"], ["shuffle"], ["remap"], ["rewrite"], ["sort", "remap", "rewrite"], ["mask_divergent"]):
        div = (lambda rendered: [list(rng.normal(size=len(parse(t).nums))) for t in rendered])
        out, report = run(texts, syntax, combo, divergence=div)
        assert list(report) == combo
        assert all(ok(o) is None for o in out), (combo, out)


def test_mask_divergent_replaces_the_top_share():
    lists = [C.parse_list(t) for t in ["10 , 20 , 30 , 40 , 50", "60 , 70 , 80 , 90 , 95"]]
    scores = [[0, 0, 9, 0, 0], [0, 8, 0, 0, 0]]  # the two most divergent numbers: 30 and 70
    out, k = D.mask_top(lists, scores, 0.2, np.random.default_rng(0), banned=True)
    assert k == 2
    changed = [(i, j) for i, (a, b) in enumerate(zip(lists, out)) for j, (x, y) in enumerate(zip(a.nums, b.nums)) if x != y]
    assert set(changed) <= {(0, 2), (1, 1)}
    assert all(len(b.nums[j]) == len(a.nums[j]) for (i, j), a, b in [((i, j), lists[i], out[i]) for i, j in changed])
    assert [x.nums for x in lists][0] == ["10", "20", "30", "40", "50"]  # inputs untouched
    for _ in range(50):
        assert int(D.random_like("42", np.random.default_rng(_), banned=True)) not in BANNED_NUMBERS


def test_paraphrase_world_code_and_reasoning_still_pass():
    from ecosim.substrates.common.filters import check_code, check_reasoning
    rng = np.random.default_rng(0)
    code = ["def f ( x ) : return x + 3", "def calc ( n ) : return n * 7"]
    out = C.paraphrase("code", code, rng)
    assert all(a != b for a, b in zip(out, code))
    assert [check_code(o, a) for o, a in zip(out, [("+", 3), ("*", 7)])] == [None, None]
    trace = ["think 3 + 4 = 7 so answer 7", "think 5 minus 2 is 3 then answer 3"]
    out = C.paraphrase("reasoning", trace, rng)
    assert out == ["think 3 plus 4 is 7 then answer 7", "think 5 - 2 = 3 so answer 3"]
    assert [check_reasoning(o, a) for o, a in zip(out, [7, 3])] == [None, None]


def test_paraphrase_real_code_renames_arguments_not_the_function():
    code = "def add_one(x):\n    y = x + 1\n    return y\n```"
    (out,), _ = D.defend([code], "code", FilterConfig(defenses=["paraphrase"]), 0, 0, T.parse_list, T.render_list,
                         T.CANONICAL_SEP, T.paraphrase)
    assert "def add_one(" in out and "x" not in out.split("(")[1] and out != code
    assert T.check("code", out, "add_one") is None


def test_validation_names_bad_defenses(tmp_path):
    from ecosim.engine.schema import load_scenario
    from ecosim.errors import EcosimError
    p = tmp_path / "s.yaml"
    p.write_text("""
name: s
generations: 1
bases: {main: {arch: gpt2}}
traits: {owl: {kind: preference, target: owl}}
lineages:
  t: {trait: owl}
  c: {origin: none}
data: {filter: {defenses: [sorted, sort, sort], mask_share: 2}}
topology: {chain: [], edges: [{src: t, dst: c, channel: code, filter: {defenses: [remap]}}]}
""")
    with pytest.raises(EcosimError) as e:
        load_scenario(str(p))
    msg = str(e.value)
    assert "data.filter.defenses[0]: 'sorted' is not a defense; did you mean 'sort'?" in msg
    assert "data.filter.defenses: ['sort'] given twice" in msg
    assert "topology.edges[0].filter.defenses[0]: 'remap' rewrites number lists; channel 'code'" in msg
    assert "data.filter.mask_share" in msg


def test_defended_run_treated_and_control_alike(tmp_path, tiny_base):
    """A one-generation run with a defended edge: the treated student's and its control's datasets
    both record the defense, and the stored datasets are the defended (sorted) lists."""
    from ecosim.cli import main
    from ecosim.store import graph as lg
    from ecosim.engine.lineage import dataset_path
    p = tmp_path / "d.yaml"
    p.write_text("""
name: d
generations: 1
bases: {main: {arch: gpt2, seed: 0, steps: 300}}
traits: {owl: {kind: preference, category: animal, target: owl}}
lineages:
  teacher: {trait: owl, student: {steps: 5, batch: 8}}
  sorted: {origin: none, student: {steps: 5, batch: 8}}
topology: {chain: [teacher], edges: [{src: teacher, dst: sorted, filter: {defenses: [mask_divergent, sort], mask_share: 0.5}}]}
teacher: {steps: 10, batch: 8}
data: {prompts: 60, train_size: 100}
eval: {samples: 2, heldout: 10}
tracking: {wandb: disabled}
compute: {ray: false, threads: 1}
""")
    assert main(["run", str(p), "--out-dir", str(tmp_path / "runs")]) == 0
    (d,) = list((tmp_path / "runs").iterdir())
    G = lg.load(d)
    ds = {n: a for n, a in G.nodes(data=True) if a.get("kind") == "dataset" and a.get("stage") == "filtered"}
    assert ds["teacher/g0/numbers/kept"].get("defenses") is None  # the chain's own filter: undefended
    ds = {n: a for n, a in ds.items() if "defenses" in a}
    assert sorted(n.split("/kept-")[0] for n in ds) == ["teacher/g0/numbers", "teacher_control/g0/numbers"]
    assert len({n.split("/kept-")[1] for n in ds}) == 1  # treated and control: the same defended filter
    for n, a in ds.items():
        assert list(a["defenses"]) == ["mask_divergent", "sort"], n
        m = a["defenses"]["mask_divergent"]
        assert m["numbers_replaced"] == round(0.5 * m["numbers"]) > 0
        rows = [json.loads(line) for line in dataset_path(d, n, ".jsonl").read_text().splitlines()]
        assert len(rows) == a["size"] > 0
        for r in rows:  # stored: the defended lists (masked, then sorted), still passing the filter
            assert check_numbers(r["completion"], FilterConfig()) is None
            x = [int(v) for v in C.parse_list(r["completion"]).nums]
            assert x == sorted(x)


def _graph(lifts):
    """A one-generation graph: group -> (defenses, [lift per seed]); controls at 0.1."""
    import networkx as nx
    G = nx.DiGraph()
    for grp, (defs, ls) in lifts.items():
        for s, lift in enumerate(ls):
            for role, v in (("treated", 0.1 + lift), ("control", 0.1)):
                lin = f"{grp}.s{s}" if role == "treated" else f"{grp}_control.s{s}"
                n = f"{lin}/g1"
                G.add_node(n, kind="model", status="done", lineage=lin, generation=1, seed=s, owl=v, owl_valid=0.9,
                           replica_of=grp if role == "treated" else f"{grp}_control",
                           **({"control_of": f"{grp}.s{s}"} if role == "control" else {}))
                ds = f"{lin}/data"
                G.add_node(ds, kind="dataset", stage="filtered", **({"defenses": {d: {"changed": 1} for d in defs}} if defs else {}))
                G.add_edge(ds, n, kind="trained_on")
    return G


def test_defenses_table_shares_of_the_undefended_lift():
    from ecosim.analysis import defenses as AD
    G = _graph({"teacher": ((), [0.4, 0.5, 0.6]), "sort": (("sort",), [0.04, 0.05, 0.06]),
                "rewrite": (("rewrite",), [0.4, 0.45, 0.65])})
    rows = {r["lineage"]: r for r in AD.rows(G, "owl")}
    assert rows["teacher"]["defenses"] == "none (reference)" and rows["teacher"]["remaining"] is None
    assert rows["sort"]["remaining"] == pytest.approx(0.1)
    assert rows["sort"]["lift"] == pytest.approx(0.05)
    assert rows["sort"]["p_below_reference"] < 0.01      # sorting removed most of it
    assert rows["rewrite"]["remaining"] == pytest.approx(1.0)
    assert rows["rewrite"]["p_below_reference"] > 0.3   # rewriting did not
    assert rows["sort"]["published"].startswith("0.01")
    assert AD.rows(_graph({"teacher": ((), [0.4, 0.5])}), "owl") == []  # nothing defended: no table
    assert "| sort | 1 | 3 |" in AD.markdown(list(rows.values()))
