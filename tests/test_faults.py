"""Fault injection: a finished tiny run (conftest's ``local_run``) is copied, damaged in one way,
and resumed. Every resume must end with the uninterrupted run's metrics, recompute the damaged
node and what depends on it (and nothing else), and say so in one line per node. A failing step
reaches the user as one line with no traceback."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecosim import EcosimError
from ecosim.store import graph as lg
from ecosim.store import rundir
from ecosim.cli import main
from ecosim.engine.runner import run

from conftest import metrics

MODELS = 9  # a, a_control, b: generations 0..2


def copy(local_run, tmp_path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(local_run, d, ignore=shutil.ignore_patterns("wandb"))
    return d


def resume(d, **kw):
    said = []
    res = run(run_dir=d, resume=True, log=said.append, **kw)
    return res, said


def recomputed(res) -> int:
    return res["computed"]["origin"] + res["computed"]["train"]


def test_every_artifact_is_hashed_and_recorded(local_run):
    G = lg.load(local_run)
    for n in lg.models(G):
        assert G.nodes[n]["sha"] == rundir.digest(local_run / "checkpoints" / n)
    kept = [n for n, a in G.nodes(data=True) if a.get("stage") == "filtered"]
    assert kept and all(len(G.nodes[n]["sha"]) == 64 for n in kept)
    bases = lg.bases(G)  # each base the lineages start from, measured as it is
    assert sorted(bases) == ["base:main", "base:other"] and all("owl" in G.nodes[n] for n in bases)
    assert len(list((local_run / "records").glob("*.json"))) == MODELS + len(kept) + len(bases)


def test_a_truncated_graph_is_rebuilt_from_the_records(local_run, tmp_path):
    d = copy(local_run, tmp_path)
    text = (d / "graph.json").read_text()
    (d / "graph.json").write_text(text[: len(text) // 2])
    res, said = resume(d)
    assert recomputed(res) == 0 and res["computed"]["write"] == 0
    assert any("damaged" in s and "rebuilding" in s for s in said)
    assert metrics(d) == metrics(local_run)


@pytest.mark.parametrize("fault", ["flip_checkpoint", "delete_checkpoint", "truncate_dataset"])
def test_a_damaged_artifact_is_recomputed_with_its_descendants(local_run, tmp_path, fault):
    d = copy(local_run, tmp_path)
    if fault == "flip_checkpoint":
        f = next(p for p in sorted((d / "checkpoints" / "a" / "g1").iterdir()) if p.suffix == ".safetensors")
        b = bytearray(f.read_bytes())
        b[len(b) // 2] ^= 0xFF
        f.write_bytes(bytes(b))
    elif fault == "delete_checkpoint":
        shutil.rmtree(d / "checkpoints" / "a" / "g1")
    else:
        f = d / "datasets" / "a" / "g1" / "numbers" / "kept.jsonl"
        f.write_text(f.read_text()[:100])
    res, said = resume(d)
    lines = [s for s in said if s.startswith("resume: a/g1")]
    assert len(lines) == 1, said
    # a/g1 (or its dataset) and what depends on it: a/g2, and a_control/g2, which is sized by its twin's pool
    assert recomputed(res) == (3 if fault != "truncate_dataset" else 2)
    assert res["computed"]["write"] == 1
    assert metrics(d) == metrics(local_run)


def test_leftovers_of_a_crash_are_removed(local_run, tmp_path):
    d = copy(local_run, tmp_path)
    (d / "checkpoints" / "a" / "g2.tmp4242").mkdir()
    (d / "checkpoints" / "a" / "g2.tmp4242" / "half.bin").write_bytes(b"x")
    (d / "graph.json.tmp4242").write_text("{")
    res, said = resume(d)
    assert recomputed(res) == 0
    assert not list(d.rglob("*.tmp4242"))
    assert any("half-written" in s for s in said)


def test_redo_recomputes_a_node_and_what_depends_on_it(local_run, tmp_path, capsys):
    d = copy(local_run, tmp_path)
    assert main(["run", "--resume", str(d), "--redo", "b/g1"]) == 0
    assert "--redo b/g1: recomputing it and the 2 task(s)" in capsys.readouterr().err
    assert json.loads((d / "run.json").read_text())["computed"] == {"base": 0, "origin": 0, "write": 1, "train": 2}
    assert metrics(d) == metrics(local_run)
    assert main(["run", "--resume", str(d), "--redo", "nope/g1"]) == 2
    err = capsys.readouterr().err
    assert "--redo nope/g1: no such node" in err and "Traceback" not in err


def test_a_damaged_graph_without_records_names_the_file(local_run, tmp_path, capsys):
    d = copy(local_run, tmp_path)
    shutil.rmtree(d / "records")
    (d / "graph.json").write_text('{"nodes": [')
    assert main(["run", "--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert f"{d / 'graph.json'} is damaged" in err and "ecosim run" in err and "Traceback" not in err


def test_atomic_writes_leave_the_old_artifact_or_the_new_one(tmp_path):
    f = tmp_path / "a.json"
    f.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space"):  # the writer's own error, not the cleanup's
        rundir.atomic_write(f, fail)
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    ck = tmp_path / "ck"
    rundir.atomic_dir(ck, lambda p: (p.mkdir(), (p / "w").write_text("1")))
    with pytest.raises(RuntimeError):
        rundir.atomic_dir(ck, lambda p: (p.mkdir(), (p / "w").write_text("2"), (_ for _ in ()).throw(RuntimeError())))
    assert (ck / "w").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "ck"]
    rundir.atomic_dir(ck, lambda p: (p.mkdir(), (p / "w").write_text("2")))
    assert (ck / "w").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "ck"]


def test_a_stalled_run_names_the_nodes_in_flight(local_run, tmp_path):
    """A pool whose tasks never finish: the run stops after compute.stall_s with the nodes named."""
    from ecosim.engine.runner import RunState, _collect, build_tasks
    from ecosim.engine.plan import expand
    from ecosim.engine.schema import load_scenario
    sc = load_scenario(str(local_run / "config.yaml"), ["compute.stall_s=0.01"])
    plan = expand(sc)
    tasks = build_tasks(plan)

    class Stuck:
        session_logs = "/tmp/ray/session_latest/logs"

        def wait(self, refs):
            time.sleep(sc.compute.stall_s)
            return []
    st = RunState(lg.load(local_run), plan, tasks, tmp_path, None, print, None, total_cost=1.0)
    with pytest.raises(EcosimError, match=r"no task finished .* still running: a/g1.*session_latest/logs"):
        _collect(Stuck(), {"ref": ("train", "a", 1, None)}, st)


def test_ctrl_c_keeps_finished_nodes_and_prints_the_resume_command(local_run, tiny_yaml, tmp_path):
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the run starts as from a terminal, with Ctrl-C's default disposition, whatever this process has
    proc = subprocess.Popen([sys.executable, "-m", "ecosim.cli", "run", str(tiny_yaml), "compute.ray=false",
                             "--out-dir", str(out)], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while time.time() - t0 < 240:  # interrupt after the first finished node (the tiny run takes seconds)
        runs = list(out.glob("tiny-*")) if out.exists() else []
        if runs and len(list((runs[0] / "records").glob("*.json"))) >= 1:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be interrupted: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    (d,) = runs
    assert proc.returncode == 130, err[-2000:]
    assert f"ecosim run --resume {d}" in err and "Traceback" not in err
    before = len(lg.models(lg.load(d)))
    res, _ = resume(d)
    assert recomputed(res) == MODELS - before
    assert metrics(d) == metrics(local_run)


def test_memory_check_refuses_an_impossible_plan_with_one_line():
    """Lineage actors that cannot fit in what Ray has are refused up front, in one line that says
    what to do; nothing known of their size, or enough memory: no problem."""
    from ecosim.engine.pool import memory_problem
    why = memory_problem({f"l{i}": 6.0 for i in range(6)}, 16.8, "measured for their bases")
    assert why is not None and "\n" not in why
    assert why.startswith("compute: 6 lineage actors x ~6 GB (measured for their bases) = 36.0 GB, more than the "
                          "16.8 GB Ray has") and "compute.ray=false" in why
    mixed = memory_problem({"owl": 2.5, "owl_control": 2.5, "gemma": 5.0, "gemma_control": 5.0}, 12.0, "m")
    assert mixed.startswith("compute: 4 lineage actors x ~2.5-5 GB (m) = 15.0 GB")
    assert memory_problem({"a": 6.0, "b": 6.0}, 16.8, "x") is None
    assert memory_problem({f"l{i}": None for i in range(100)}, 1.0, "x") is None


def test_a_run_whose_actors_cannot_fit_is_refused_before_they_start(tiny_yaml, tmp_path, capsys):
    """Through the CLI on the shared Ray instance: an impossible compute.memory_per_lineage stops
    the run with that one line and exit code 2, before any base is made."""
    from ecosim.cli import main
    rc = main(["run", str(tiny_yaml), "compute.memory_per_lineage=100000", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "compute: 3 lineage actors x ~100000 GB (compute.memory_per_lineage)" in err, err
    assert "Traceback" not in err
