"""bases_per_seed: each ecosystem seed of a world study starts from its own bases, so a contrast
between bases is replicated over pairs of bases (issue 19); the default keeps shared bases."""
import pytest

from ecosim.engine.plan import expand
from ecosim.engine.runner import _base_offset, bases_of_seed
from ecosim.engine.schema import load_scenario
from ecosim.errors import EcosimError

# conftest's tiny scenario with bases pretrained briefly and generation 0 only: what matters is
# which bases each seed's teachers load
SHORT = ["bases.main.steps=30", "bases.other.steps=30", "generations=0", "compute.ray=false"]


@pytest.fixture
def small(tiny_yaml):
    return tiny_yaml


def test_offsets_shared_by_default_and_per_seed_when_asked(small):
    plan = expand(load_scenario(str(small), ["seeds=3"]))  # b has control: false
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
    assert main(["run", str(small), "seeds=2", *SHORT, "--out-dir", str(tmp_path / "shared")]) == 0
    assert not {"s1000", "s1001"} & made()      # shared: seed 1 starts from the configured bases
    assert main(["run", str(small), "seeds=2", *SHORT, "bases_per_seed=true", "--out-dir", str(tmp_path / "own")]) == 0
    assert {"s0", "s1", "s1000", "s1001"} <= made()  # seed 1 pretrained its own main and other
