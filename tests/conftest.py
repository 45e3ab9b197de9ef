"""Tests build tiny models from config, never touch the network, and cache bases in a temp dir."""
import os

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ecosim_cache")
    old = os.environ.get("ECOSIM_CACHE")
    os.environ["ECOSIM_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("ECOSIM_CACHE", None)
    else:
        os.environ["ECOSIM_CACHE"] = old


@pytest.fixture(scope="session")
def world():
    from ecosim.world import World
    return World()


@pytest.fixture(scope="session")
def tiny_base(cache_dir):
    """A briefly pretrained GPT-2 (enough to write the chat format, not to be good)."""
    from ecosim.models import BaseConfig, get_base
    model, info = get_base(BaseConfig(steps=300), log=None)
    return model
