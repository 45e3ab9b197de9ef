"""A lineage keeps only the models it used last in memory (the substrate's HELD_MODELS); any other is
rebuilt from its checkpoint when asked for again."""
import json
import types

from ecosim.engine import lineage, registry


def test_a_lineage_holds_few_models_and_reloads_the_rest(monkeypatch, tmp_path):
    loads = []
    sub = types.SimpleNamespace(NO_SYSTEM="", HELD_MODELS=4, set_threads=lambda n: None, world_of=lambda sc: None,
                                load_base=lambda bc, sc, name: "base",
                                load=lambda path, start, meta, world: loads.append(path.name) or f"model {path.name}")
    monkeypatch.setattr(registry, "of", lambda sc: sub)
    sc = types.SimpleNamespace(seed=0, data=types.SimpleNamespace(channel="numbers"), bases={"main": object()})
    for g in range(10):
        d = lineage.checkpoint_dir(tmp_path, f"a/g{g}")
        d.mkdir(parents=True)
        (d / "ecosim.json").write_text(json.dumps({"start_base": "main"}))
    lin = lineage.Lineage("a", sc, spec=None, key="a", trait=None, run_dir=str(tmp_path))
    for g in range(10):
        assert lin.model(f"a/g{g}")[0] == f"model g{g}"
        assert len(lin._models) <= sub.HELD_MODELS
    assert lin.model("a/g9")[0] == "model g9" and loads.count("g9") == 1   # still held: not reloaded
    assert lin.model("a/g0")[0] == "model g0" and loads.count("g0") == 2   # dropped, then rebuilt


def test_real_lineage_memory_is_the_measured_figure_for_its_base_and_settings():
    """hf lineage_gb: the whole-batch figure, or the lean one for a measured family when the run
    checkpoints in micro-batches (at most 600 tokens; at most 300 with generation batches of 16)."""
    from types import SimpleNamespace as NS
    from ecosim.substrates.hf import substrate as H

    def sc(model, batch=4, max_new=None, gen=64, **compute):
        c = {"checkpointing": False, "micro_batch_tokens": None, **compute}
        return NS(bases={"b": NS(model=model)}, compute=NS(**c), teacher=NS(batch=4),
                  lineages={"x": NS(base="b", student=NS(batch=batch))}, data=NS(channel="numbers"),
                  text=NS(max_new=max_new, batch=gen))
    assert H.lineage_gb(sc("smollm2-135m-instruct"), "b") == H.LINEAGE_GB   # small passes: the writes' figure
    lean = {"checkpointing": True, "micro_batch_tokens": 600}
    assert H.lineage_gb(sc("smollm2-135m-instruct", **lean), "b") == 3.8 < H.LINEAGE_GB
    assert H.lineage_gb(sc("gemma3-270m", **lean), "b") == 4.3
    assert H.lineage_gb(sc("/models/other", **lean), "b") == H.LINEAGE_GB                 # not measured
    assert H.lineage_gb(sc("smollm2-135m-instruct", checkpointing=True, micro_batch_tokens=2000), "b") == H.LINEAGE_GB
    leaner = {"checkpointing": True, "micro_batch_tokens": 300}
    assert H.lineage_gb(sc("smollm2-135m-instruct", **leaner), "b") == 3.8   # generation batch 64: the write's peak
    # and generation batches of 16: what smollm2_owl_ray_lean measured (2.36 GB at most)
    assert H.lineage_gb(sc("smollm2-135m-instruct", gen=16, **leaner), "b") == 2.4 <= 2.5
    assert H.lineage_gb(sc("gemma3-270m", gen=16, **leaner), "b") == 3.8


def test_real_lineage_memory_counts_its_largest_training_pass():
    """Whole batches hold every activation: the check counts the largest pass, so two lineages of
    recipe_constrained_lora's students (batch 16 in one pass: 10.1-10.9 GB measured) are refused
    on the Xeon's 15.7 GB for Ray tasks in one line, and micro-batches of 600 tokens bring one to ~5.7 GB."""
    from types import SimpleNamespace as NS
    from ecosim.engine.pool import memory_problem
    from ecosim.substrates.hf import substrate as H

    def sc(batch, micro=None):
        return NS(bases={"b": NS(model="smollm2-135m-instruct")}, teacher=NS(batch=8),
                  compute=NS(checkpointing=False, micro_batch_tokens=micro), data=NS(channel="numbers"),
                  lineages={"t": NS(base="b", student=NS(batch=batch)), "o": NS(base="other", student=NS(batch=64))},
                  text=NS(max_new=52, batch=64))
    assert H.pass_tokens(sc(16), "b") == 16 * (H.PROMPT_TOKENS + 52)   # the other base's batch 64 is not counted
    whole, micro = H.lineage_gb(sc(16), "b"), H.lineage_gb(sc(16, micro=600), "b")
    assert 10.0 <= whole <= 11.5 and H.LINEAGE_GB <= micro <= 6.0
    why = memory_problem({"t": whole, "c": whole}, 15.7, "measured for their bases")
    assert why is not None and "\n" not in why and "2 lineage actors" in why and "15.7 GB" in why
    assert memory_problem({"t": micro, "c": micro}, 15.7, "measured for their bases") is None
