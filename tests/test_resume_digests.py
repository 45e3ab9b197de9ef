"""Resume checks what it builds on (``ecosim.store.digests``): a run records digests of its bases
and config.yaml when it starts; resuming after a base's weights or a config setting changed stops
with one line naming it (exit 2), nothing computed or rewritten; an unchanged run resumes; a run
directory without digests resumes as before with one note. Copies of conftest's tiny ``local_run``,
with the base cache copied too, so the session's cached bases are never touched."""
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ecosim.cli import main
from ecosim.engine.runner import run
from ecosim.errors import EcosimError
from ecosim.store import digests, rundir


@pytest.fixture
def resumable(local_run, cache_dir, tmp_path, monkeypatch):
    """(a copy of the tiny run, the copied cache it now loads its bases from)."""
    d = tmp_path / "run"
    shutil.copytree(local_run, d, ignore=shutil.ignore_patterns("wandb"))
    cache = tmp_path / "cache"
    shutil.copytree(cache_dir, cache)
    monkeypatch.setenv("ECOSIM_CACHE", str(cache))
    return d, cache


def resume(d):
    said = []
    return run(run_dir=d, resume=True, log=said.append), said


def snapshot(d: Path) -> dict:
    """Every file of the run directory (but digests.json) with its digest."""
    return {str(p.relative_to(d)): rundir.digest(p) for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != digests.FILE}


def test_a_run_records_its_bases_and_config(local_run, cache_dir):
    d = json.loads((local_run / digests.FILE).read_text())
    assert set(d["bases"]) == {"main", "other"}
    for name, b in d["bases"].items():
        assert Path(b["what"]).parent == cache_dir / "bases" and rundir.digest(Path(b["what"])) == b["digest"]
    assert d["bases"]["main"]["digest"] != d["bases"]["other"]["digest"]
    assert d["config.yaml"]["text"] == (local_run / "config.yaml").read_text()
    assert len(d["config.yaml"]["digest"]) == 64


def test_an_unchanged_run_resumes(resumable):
    d, _ = resumable
    res, said = resume(d)
    assert res["computed"] == {k: 0 for k in res["computed"]}
    assert not [s for s in said if "note" in s or "warning" in s], said


def test_a_changed_base_stops_the_resume_with_one_line(resumable, capsys):
    d, cache = resumable
    old = json.loads((d / digests.FILE).read_text())["bases"]["main"]
    base = cache / Path(old["what"]).relative_to(Path(old["what"]).parent.parent)
    from safetensors.torch import load_file, save_file
    w = load_file(str(base / "model.safetensors"))
    k = sorted(w)[0]
    w[k] = w[k] + 0.01  # still a loadable model: only the digest can tell
    save_file(w, str(base / "model.safetensors"), metadata={"format": "pt"})
    before = snapshot(d)
    assert main(["run", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "changed since this run started" in l]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("ecosim: error: base 'main' changed since this run started")
    assert f"{old['digest'][:8]}… -> {rundir.digest(base)[:8]}…" in line and str(base) in line
    assert "Restore the base, or start a new run" in line and "'other'" not in line
    assert "Traceback" not in err and snapshot(d) == before  # nothing computed, nothing rewritten
    print(f"\nthe line a user sees:\n{line}")
    # restored: it resumes
    shutil.copy(Path(old["what"]) / "model.safetensors", base / "model.safetensors")
    res, _ = resume(d)
    assert sum(res["computed"].values()) == 0


def test_an_edited_config_stops_the_resume_with_one_line(resumable, capsys):
    d, _ = resumable
    conf = OmegaConf.load(d / "config.yaml")
    conf.data.prompts += 1
    (d / "config.yaml").write_text(OmegaConf.to_yaml(conf))
    before = snapshot(d)
    assert main(["run", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "changed since this run started" in l]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ecosim: error: {d / 'config.yaml'} changed since this run started "
                               f"(data.prompts: 60 -> 61)")
    assert "start a new run" in lines[0] and snapshot(d) == before
    print(f"\nthe line a user sees:\n{lines[0]}")


def test_a_comment_in_the_config_is_a_note(resumable):
    d, _ = resumable
    with open(d / "config.yaml", "a") as f:
        f.write("# looked at this run again\n")
    res, said = resume(d)
    assert sum(res["computed"].values()) == 0
    assert len([s for s in said if "no setting changed" in s]) == 1


def test_a_change_of_compute_alone_is_a_note(resumable):
    """Threads or Ray say how a run is computed, not what: ecosim transmit rewrites a seed's
    compute section when it resumes with other threads."""
    d, _ = resumable
    conf = OmegaConf.load(d / "config.yaml")
    conf.compute.threads = conf.compute.threads + 1
    (d / "config.yaml").write_text(OmegaConf.to_yaml(conf))
    res, said = resume(d)
    assert sum(res["computed"].values()) == 0
    notes = [s for s in said if "only how the run is computed changed" in s]
    assert len(notes) == 1 and "compute.threads" in notes[0], said


def test_a_run_without_digests_resumes_with_one_note(resumable):
    d, _ = resumable
    recorded = json.loads((d / digests.FILE).read_text())
    (d / digests.FILE).unlink()
    res, said = resume(d)
    assert sum(res["computed"].values()) == 0
    notes = [s for s in said if "no digests to check" in s]
    assert len(notes) == 1 and notes[0].startswith("resume: note: ") and str(d) in notes[0]
    # recorded now, for later resumes: the same bases give the same digests
    now = json.loads((d / digests.FILE).read_text())
    assert {n: b["digest"] for n, b in now["bases"].items()} == \
        {n: b["digest"] for n, b in recorded["bases"].items()}


def test_mlp_base_digest_is_its_initialisation():
    from types import SimpleNamespace
    from ecosim.substrates.mlp import substrate as mlp
    from ecosim.substrates.mlp.mlp import MLPConfig
    sc = SimpleNamespace(mlp=MLPConfig())
    a, what = mlp.base_digest(SimpleNamespace(seed=0), sc, "b")
    assert mlp.base_digest(SimpleNamespace(seed=0), sc, "b")[0] == a
    assert mlp.base_digest(SimpleNamespace(seed=1), sc, "b")[0] != a
    assert "no file" in what and "seed 0" in what


def test_each_seeds_own_bases_are_checked_too(tmp_path):
    """bases_per_seed: every seed's set of bases is recorded (``NAME@seedS``) and checked."""
    from types import SimpleNamespace
    from ecosim.substrates.mlp import substrate as mlp
    from ecosim.substrates.mlp.mlp import MLPConfig

    def scen(seed):
        return SimpleNamespace(mlp=MLPConfig(), bases={"b": SimpleNamespace(seed=seed)})
    (tmp_path / "config.yaml").write_text("name: x\n")
    d = digests.record(tmp_path, scen(0), mlp, {"b"}, {"seed1": scen(1000)})
    assert set(d["bases"]) == {"b", "b@seed1"} and d["bases"]["b"]["digest"] != d["bases"]["b@seed1"]["digest"]
    assert digests.check_config(tmp_path) == []
    assert digests.check_bases(tmp_path, scen(0), mlp, {"b"}, {"seed1": scen(1000)}) == []
    with pytest.raises(EcosimError) as e:
        digests.check_bases(tmp_path, scen(0), mlp, {"b"}, {"seed1": scen(1001)})
    assert str(e.value).count("\n") == 0 and str(e.value).startswith("base 'b@seed1' changed since this run started")
