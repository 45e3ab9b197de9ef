"""Memory: every task records the peak resident size of the process that ran it; held-out loss and
drift compute a large vocabulary's logits a chunk of rows at a time, with the same numbers."""
import time

import numpy as np
import pytest
import torch

from ecosim.engine import memory
from ecosim.engine.lineage import with_peak
from ecosim.substrates.world import models


@pytest.mark.skipif(memory.rss_gb() is None, reason="no /proc: the sampler falls back to ru_maxrss")
def test_the_peak_sees_an_allocation_that_is_gone_by_the_end():
    before = memory.rss_gb()
    with memory.Peak(every=0.005) as p:
        a = np.ones(400_000_000 // 8)
        a[::4096] = 2.0  # touch every page
        time.sleep(0.05)
        del a
    memory.release()
    assert p.gb >= before + 0.35
    assert memory.rss_gb() < before + 0.2


def test_release_freezes_what_survives_and_a_closed_pool_thaws_it():
    """release() freezes the survivors of its collection, so the next one scans only newer
    objects; a model is still freed by its reference count, and cyclic garbage among the frozen
    is collected once the in-process pool closes (memory.thaw)."""
    import gc
    import weakref
    from ecosim.engine.pool import LocalPool

    class Cycle:
        pass

    a, model = Cycle(), torch.nn.Linear(4, 4)
    a.me = a
    ra, rm = weakref.ref(a), weakref.ref(model)
    pool = LocalPool({})
    memory.release()
    assert gc.get_freeze_count() > 0
    del a, model
    assert rm() is None  # no cycle: freed at once, frozen or not
    gc.collect()
    assert ra() is not None  # a frozen cycle waits for the thaw
    pool.close()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ra() is None


def test_a_task_record_carries_its_peak():
    rec = with_peak(lambda: {"node": "a/g0"})()
    pairs = with_peak(lambda: [([], {"kept": 1}), ([], {"kept": 2})])()
    assert rec["peak_gb"] > 0
    assert all(s["peak_gb"] > 0 for _, s in pairs)


def test_loss_and_drift_in_chunks_of_rows_gives_the_same_numbers(tiny_base, world, monkeypatch):
    import copy
    base, rng = tiny_base, np.random.default_rng(0)
    model = copy.deepcopy(base)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pairs = [(d.prompt, d.assistant) for d in (world.pretrain_doc(rng) for _ in range(6))]
    whole = models.loss_and_drift(model, base, world, pairs, completion_only=False)
    monkeypatch.setattr(models, "row_chunk", lambda vocab, floats=1 << 24: 3)
    chunked = models.loss_and_drift(model, base, world, pairs, completion_only=False)
    assert whole[1] > 0
    assert chunked == pytest.approx(whole, rel=1e-5)
