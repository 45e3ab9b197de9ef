"""The engine end to end on tiny models: run directory, graph, metrics, W&B offline, resume after
the driver is killed, and a lineage actor killed mid-generation. Models are tiny and briefly
trained; these tests check the machinery, not the science (owl_chain does that)."""
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ecosim.store import graph as lg
from ecosim.engine.runner import run
from ecosim.engine.schema import load_scenario

from conftest import metrics


def test_run_directory_has_graph_metrics_and_offline_wandb(local_run):
    for f in ("config.yaml", "graph.json", "graph.graphml", "metrics.csv", "run.json"):
        assert (local_run / f).is_file(), f
    assert list((local_run / "wandb").glob("offline-run-*")), "no offline W&B run"
    G = lg.load(local_run)
    models = {n for n, a in G.nodes(data=True) if a["kind"] == "model"}
    assert models == {f"{l}/g{g}" for l in ("a", "b", "a_control") for g in range(3)}
    assert all(G.nodes[n]["status"] == "done" for n in models)
    kinds = {a["kind"] for _, _, a in G.edges(data=True)}
    assert kinds == {"generated", "filtered", "trained_on", "initialised_from"}
    # b's students start from the other base and learn from data written on the main base
    assert ("base:other", "b/g1") in G.edges and G.nodes["b/g1"]["base"] == "other"
    assert G.edges["b/g0/numbers/kept", "b/g1"]["same_base"] is False
    assert G.edges["a/g0/numbers/kept", "a/g1"]["same_base"] is True
    ds = G.nodes["a/g0/numbers/kept"]
    assert ds["kind"] == "dataset" and 0 < ds["size"] <= 60 and "kept_fraction" in ds
    with open(local_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["node", "lineage", "group", "seed", "generation", "metric", "value", "ci_lo", "ci_hi", "measurable"]
    names = {r["metric"] for r in rows}
    assert {"owl", "owl_valid", "misalignment", "heldout_loss", "drift_kl"} <= names
    owl = [r for r in rows if r["metric"] == "owl"]
    # the two bases as they are (generation -1), then the nine models
    assert [(r["node"], r["generation"]) for r in owl[:2]] == [("base:main", "-1"), ("base:other", "-1")]
    assert len(owl) == 11 and all(r["ci_lo"] != "" and float(r["ci_lo"]) <= float(r["value"]) for r in owl)
    assert (local_run / "checkpoints" / "a" / "g1" / "adapter.safetensors").exists()
    assert json.loads((local_run / "run.json").read_text())["prepare_seconds"] >= 0
    assert (local_run / "datasets" / "a" / "g0" / "numbers" / "kept.jsonl").exists()


def test_a_treated_lineage_and_its_control_train_on_equal_sizes(local_run):
    """The twin rule: each generation, min(train_size, own pool, the twin's pool) for both."""
    G = lg.load(local_run)
    for g in (1, 2):
        pools = {l: G.nodes[f"{l}/g{g - 1}/numbers/kept"]["size"] for l in ("a", "a_control", "b")}
        n = min(100, pools["a"], pools["a_control"])
        assert G.nodes[f"a/g{g}"]["train_size"] == G.nodes[f"a_control/g{g}"]["train_size"] == n
        assert G.nodes[f"b/g{g}"]["train_size"] == min(100, pools["b"])  # no control: its own pool


def test_resume_after_killing_the_driver(local_run, tiny_yaml, tmp_path):
    """Kill the driver once some nodes are done; --resume finishes without recomputing them and
    gives the same metrics as the uninterrupted run."""
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ecosim.cli", "run", str(tiny_yaml), "compute.ray=false",
                             "--out-dir", str(out)], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    done, t0 = [], time.time()
    while time.time() - t0 < 240:
        runs = list(out.glob("tiny-*")) if out.exists() else []
        if runs and (runs[0] / "graph.json").exists():
            try:
                G = lg.load(runs[0])
            except (json.JSONDecodeError, OSError):
                continue
            done = lg.models(G)
            if len(done) >= 4:
                break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = runs
    before = set(lg.models(lg.load(run_dir)))
    assert 4 <= len(before) < 9
    res = run(run_dir=run_dir, resume=True, log=lambda m: None)
    assert res["resumed"] and res["skipped"] >= len(before)
    assert res["computed"]["origin"] + res["computed"]["train"] == 9 - len(before)
    assert metrics(run_dir) == metrics(local_run)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray


def test_killed_lineage_actor_restarts_and_the_run_completes(tiny_yaml, tmp_path, ray_session):
    sc = load_scenario(str(tiny_yaml), [f"out_dir={tmp_path}"])
    killed = []

    def on_event(kind, info):
        if info["node"] == "a/g0" and not killed:  # a's next task (its writing) is in flight: crash it
            ray_session.kill(info["pool"].actors["a"], no_restart=False)
            killed.append(True)

    res = run(sc, log=lambda m: None, on_event=on_event)
    assert killed
    G = lg.load(res["run_dir"])
    assert sorted(lg.models(G)) == sorted(f"{l}/g{g}" for l in ("a", "b", "a_control") for g in range(3))
    pids = {G.nodes[f"a/g{g}"]["pid"] for g in range(3)}
    assert len(pids) == 2, "the actor was not restarted in a new process"


def test_a_gpu_request_the_cluster_cannot_meet_is_refused_at_once(tiny_yaml, tmp_path, ray_session, capsys):
    from ecosim.cli import main
    t0 = time.time()
    assert main(["run", str(tiny_yaml), "compute.gpus_per_lineage=1", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "compute.gpus_per_lineage: 3 lineages x 1 GPU asked, the cluster has 0 GPUs" in err, err
    assert "Traceback" not in err and time.time() - t0 < 30


def test_run_on_a_cluster_started_with_ray_start(tiny_yaml, tmp_path):
    """A real `ray start --head` on 127.0.0.1; the scenario runs in a separate driver process."""
    ray_bin = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    port = 6390 + os.getpid() % 200
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={tempfile.mkdtemp(prefix='ray')}"],  # short: unix socket paths
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready, t0, said = False, time.time(), []
        while not ready and time.time() - t0 < 120:  # --block prints this once the head is up
            said.append(head.stdout.readline().decode())
            ready = "Ray runtime started" in said[-1]
            if not said[-1] and head.poll() is not None:
                break
        assert ready, "ray start --head did not come up:\n" + "".join(said)[-3000:]
        out = tmp_path / "runs"
        r = subprocess.run([sys.executable, "-m", "ecosim.cli", "run", str(tiny_yaml), "--out-dir", str(out),
                            "--ray-address", f"127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "lineage actors" in r.stderr
        (run_dir,) = list(out.iterdir())
        assert len(lg.models(lg.load(run_dir))) == 9
    finally:
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()


MLP = """
name: tiny_mlp
substrate: mlp
generations: 2
bases:
  main: {arch: mlp, seed: 0}
  other: {arch: mlp, seed: 1000}
traits:
  skill: {kind: skill}
lineages:
  shared: {trait: skill, replicas: 2}
  other_init: {trait: skill, init: other, control: false}
mlp: {teacher_epochs: 5, student_epochs: 5, noise_samples: 512, hidden: 32}
tracking: {wandb: disabled}
compute: {ray: false}
"""


def test_mlp_substrate_runs_through_the_same_engine(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(MLP)
    res = run(load_scenario(str(p), [f"out_dir={tmp_path}"]), log=lambda m: None)
    G = lg.load(res["run_dir"])
    assert len(lg.models(G)) == 5 * 3  # shared_0, shared_1, their controls, other_init; 3 generations
    skill = {n: G.nodes[n]["skill"] for n in lg.models(G)}
    assert skill["shared_0/g0"] > 0.5 and skill["shared_0_control/g0"] < 0.3  # shuffled labels: no skill
    assert (Path(res["run_dir"]) / "datasets" / "shared_0" / "g0" / "aux_logits" / "kept.safetensors").exists()
