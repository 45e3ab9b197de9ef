import pytest
import torch

from ecosim import EcosimError
from ecosim.substrates.world.models import BaseConfig, base_key, build_model, get_base, save_model


def test_base_is_cached_after_first_pretraining():
    cfg = BaseConfig(arch="llama", steps=5, batch=4)
    m1, info1 = get_base(cfg, log=None)
    m2, info2 = get_base(cfg, log=None)
    assert info1["source"] == "pretrained" and info2["source"] == "cache"
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_cache_key_covers_what_defines_a_base():
    a = BaseConfig()
    keys = {base_key(a), base_key(BaseConfig(seed=1)), base_key(BaseConfig(arch="llama")),
            base_key(BaseConfig(steps=10)), base_key(BaseConfig(size="small"))}
    assert len(keys) == 5


@pytest.mark.parametrize("arch,size", [("gpt2", "tiny"), ("gpt2", "small"), ("llama", "tiny"), ("llama", "small")])
def test_zoo_builds_every_arch_and_size(world, arch, size):
    m = build_model(BaseConfig(arch=arch, size=size), world)
    assert m(input_ids=torch.tensor([[1, 5, 6]])).logits.shape[-1] == len(world.vocab)


def test_local_checkpoint_directory_round_trips(world, tmp_path):
    m = build_model(BaseConfig(seed=4), world)
    save_model(m, world, tmp_path / "ckpt")
    loaded, info = get_base(BaseConfig(path=str(tmp_path / "ckpt")), log=None)
    assert info["source"] == "path"
    x = torch.tensor([[1, 10, 20, 30]])
    assert torch.allclose(m(input_ids=x).logits, loaded(input_ids=x).logits, atol=1e-6)


def test_missing_base_path_is_one_clear_error(tmp_path):
    with pytest.raises(EcosimError, match="does not exist"):
        get_base(BaseConfig(path=str(tmp_path / "nope")), log=None)


def test_corrupt_checkpoint_is_one_clear_error(world, tmp_path):
    save_model(build_model(BaseConfig(), world), world, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(EcosimError, match="could not be loaded"):
        get_base(BaseConfig(path=str(tmp_path / "ckpt")), log=None)
