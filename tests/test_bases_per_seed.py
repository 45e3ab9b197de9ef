"""bases_per_seed: each ecosystem seed of a world study starts from its own bases, so a contrast
between bases is replicated over pairs of bases (issue 19); the default keeps shared bases."""
import pytest

from ecosim.engine.plan import expand
from ecosim.engine.runner import _base_offset, bases_of_seed
from ecosim.engine.schema import load_scenario
from ecosim.errors import EcosimError

SMALL = """
name: bps
generations: 1
bases:
  main: {arch: gpt2, seed: 0, steps: 30}
  other: {arch: gpt2, seed: 1, steps: 30}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  a: {trait: owl, student: {steps: 4, batch: 8}}
  b: {trait: owl, init: other, student: {steps: 4, batch: 8}}
teacher: {steps: 4, batch: 8}
data: {prompts: 24, train_size: 100}
eval: {samples: 1, heldout: 4}
tracking: {wandb: disabled}
compute: {threads: 1, ray: false}
"""


@pytest.fixture
def small(tmp_path):
    p = tmp_path / "bps.yaml"
    p.write_text(SMALL)
    return p


def test_offsets_shared_by_default_and_per_seed_when_asked(small):
    plan = expand(load_scenario(str(small), ["seeds=3"]))
    names = ["a.s0", "a.s1", "a_control.s2", "b.s2"]
    assert [_base_offset(plan, n, replicas=False, per_seed=False) for n in names] == [0, 0, 0, 0]
    assert [_base_offset(plan, n, replicas=False, per_seed=True) for n in names] == [0, 1000, 2000, 2000]
    sc = load_scenario(str(small), ["seeds=3", "bases_per_seed=true"])
    assert {n: b.seed for n, b in bases_of_seed(sc, 2).bases.items()} == {"main": 2000, "other": 2001}


def test_a_real_model_has_one_set_of_weights(small):
    with pytest.raises(EcosimError, match="bases_per_seed: a real model has one set of weights"):
        load_scenario(None, ["bases.main.model=smollm2", "lineages.a.trait=null", "lineages.a.origin=base",
                             "generations=0", "seeds=2", "bases_per_seed=true"])


def test_each_seed_trains_on_its_own_bases(small, tmp_path, cache_dir):
    from ecosim.cli import main
    made = lambda: {p.name.split("-")[2] for p in (cache_dir / "bases").iterdir()} if (cache_dir / "bases").exists() else set()
    # generation 0 only: what matters is which bases each seed's teachers load
    assert main(["run", str(small), "seeds=2", "generations=0", "--out-dir", str(tmp_path / "shared")]) == 0
    assert not {"s1000", "s1001"} & made()      # shared: seed 1 starts from the configured bases
    assert main(["run", str(small), "seeds=2", "generations=0", "bases_per_seed=true",
                 "--out-dir", str(tmp_path / "own")]) == 0
    assert {"s0", "s1", "s1000", "s1001"} <= made()  # seed 1 pretrained its own main and other
