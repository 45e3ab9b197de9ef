"""The substrate protocol and the pieces of it that need no model: which substrate runs a
scenario, matched training sizes, and the logits channel's datasets on disk."""
import pytest
import torch

from ecosim import EcosimError
from ecosim.substrates.world import substrate as substrate_lm
from ecosim.substrates.mlp import substrate as substrate_mlp
from ecosim.engine import registry as substrates  # noqa: E501
from ecosim.substrates.common.assemble import allocate
from ecosim.substrates.common.bases import BaseConfig
from ecosim.engine.schema import Scenario, check

PROTOCOL = ("NO_SYSTEM", "DATASET_SUFFIX", "CHANNELS", "REPLICA_SEEDS", "check", "prepare",
            "world_of", "load_base", "make_origin", "write", "assemble", "train", "measure", "save", "load",
            "dump", "undump")


@pytest.mark.parametrize("name", ["world", "mlp", "hf"])
def test_every_substrate_has_the_protocol(name):
    sub = pytest.importorskip(f"ecosim.substrates.{name}.substrate")
    assert [n for n in PROTOCOL if not hasattr(sub, n)] == []


def test_of_picks_the_substrate_and_refuses_mixed_bases():
    assert substrates.of(Scenario(bases={"main": BaseConfig()})) is substrate_lm
    assert substrates.of(Scenario(substrate="mlp", bases={"main": BaseConfig(arch="mlp")})) is substrate_mlp
    mixed = Scenario(bases={"main": BaseConfig(), "real": BaseConfig(model="gemma3-270m")})
    with pytest.raises(EcosimError, match="world bases and real models cannot be mixed"):
        substrates.of(mixed)
    assert any("cannot be mixed" in p and "real models: ['real']" in p for p in check(mixed))


def test_allocate_fills_the_size_exactly_and_respects_lengths():
    assert allocate([100, 100], [1.0, 1.0], 51) in ([26, 25], [25, 26])
    assert allocate([10, 100], [1.0, 1.0], 60) == [10, 50]   # a short part's rest goes to the other
    assert allocate([10, 20], [1.0, 1.0], 99) == [10, 20]    # never more than there is
    assert allocate([3, 3, 3], [1.0, 1.0, 1.0], 2) in ([1, 1, 0], [1, 0, 1], [0, 1, 1])


def test_assemble_takes_the_twin_cap():
    sc = Scenario(bases={"main": BaseConfig()})
    sc.data.train_size = 50
    parts = [([(f"p{i}", f"c{i}") for i in range(40)], 1.0)]
    assert substrate_lm.assemble(parts, None, sc, "numbers", seed=0)[1]["size"] == 40
    ex, ts = substrate_lm.assemble(parts, None, sc, "numbers", seed=0, size=33)
    assert ts["size"] == len(ex) == 33 and len(set(ex)) == 33
    sc.data.regime = "accumulate"
    assert substrate_lm.assemble(parts + parts, None, sc, "numbers", seed=0, size=70)[1]["size"] == 70


@pytest.mark.parametrize("top_k", [3, None])
def test_logits_datasets_round_trip(tmp_path, top_k):
    v = 7
    soft = []
    for t in (2, 4):
        prob = torch.rand(t, top_k or v).to(torch.float16)
        soft.append((torch.randint(0, v, (t, top_k), dtype=torch.int32) if top_k else None, prob))
    ex = [("S none U a A", "1 , 2", soft[0]), ("S none U b A", "3 , 4 , 5", soft[1])]
    path = tmp_path / f"kept{substrate_lm.DATASET_SUFFIX}"
    substrate_lm.dump(ex, path)
    back = substrate_lm.undump(path)
    assert [(p, c) for p, c, _ in back] == [(p, c) for p, c, _ in ex]
    for (_, _, (i, p)), (_, _, (i0, p0)) in zip(back, ex):
        assert torch.equal(p, p0) and (i is None and i0 is None or torch.equal(i, i0))
    plain = tmp_path / "plain.jsonl"
    substrate_lm.dump([(p, c) for p, c, _ in ex], plain)
    assert substrate_lm.undump(plain) == [(p, c) for p, c, _ in ex]
