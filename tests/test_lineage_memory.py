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
