"""The generation loop. One driver process plans every task of the run (each base measured as it
is; generation 0 of each lineage; each model writing on its edges' channels; each student's
training), submits them to
the lineage pool in dependency order (Ray runs independent ones in parallel), and records every
finished node in the lineage graph, the run directory and W&B as it arrives, so a crash loses at
most the nodes in flight and ``--resume`` recomputes nothing that finished.

Run directory ``runs/<scenario>-<timestamp>/``: config.yaml (resolved), graph.json, graph.graphml,
metrics.csv, datasets/, checkpoints/, run.json (timings, what was computed), wandb/."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
from omegaconf import OmegaConf

from ecosim.errors import EcosimError, Interrupted
from ecosim.engine import registry
from ecosim.store import graph as lg
from ecosim.store import digests, rundir
from ecosim.store import versions
from ecosim.engine.lineage import checkpoint_dir, dataset_path, offset_base
from ecosim.engine.plan import Plan, expand, node_id
from ecosim.engine.schema import MAX_REPLICAS, load_saved
from ecosim.engine.tasks import Task, base_of, build_tasks, dependencies, has_model, order

COST = {"base": 0.5, "origin": 2.0, "write": 1.0, "train": 3.0}  # rough relative durations, for the ETA only
GRAPHML_EVERY_S = 5.0


# ----------------------------------------------------------------- graph bookkeeping
def plan_graph(plan: Plan) -> nx.DiGraph:
    """Every model node of the run, pending, with what is known before it is made."""
    sc = plan.scenario
    G = lg.new_graph(sc.name)
    for name, b in sc.bases.items():
        G.add_node(f"base:{name}", kind="base", **{k: v for k, v in dataclasses.asdict(b).items()
                                                    if isinstance(v, (str, int, float)) and v is not None})
    for name, spec in plan.lineages.items():
        for g in range(sc.generations + 1):
            if not has_model(plan, name, g):
                continue
            treated = plan.control_of.get(name)
            lg.add_model(G, node_id(name, g), lineage=name, generation=g, status="pending",
                         base=base_of(plan, name, g), lineage_base=spec.base,
                         init=spec.origin if g == 0 else spec.init,
                         trait=spec.trait or "", role="control" if treated else ("treated" if spec.trait else "neutral"),
                         control_of=treated or "", replica_of=plan.replica_of[name],
                         seed=plan.seed_index.get(name, 0))
    return G


def record_base(G: nx.DiGraph, task: Task, rec: dict) -> None:
    a = G.nodes[f"base:{task.base}"]
    a.update(status="done", seconds=round(rec["seconds"], 2), pid=rec["pid"], peak_gb=rec.get("peak_gb"))
    lg.set_metrics(G, f"base:{task.base}", rec["metrics"])


def record_model(G: nx.DiGraph, plan: Plan, task: Task, rec: dict) -> None:
    if task.kind == "base":
        return record_base(G, task, rec)
    n = node_id(task.lineage, task.generation)
    a = G.nodes[n]
    a.update(status="done", seconds=round(rec["seconds"], 2), pid=rec["pid"], sha=rec.get("sha"),
             peak_gb=rec.get("peak_gb"))
    lg.set_metrics(G, n, rec["metrics"])
    if task.kind == "origin":
        G.add_edge(f"base:{plan.lineages[task.lineage].base}", n, kind="initialised_from",
                   origin=plan.lineages[task.lineage].origin)
        # a teacher trained to a target strength: its updates, why it stopped, its checks
        a.update({k: v for k, v in rec.items() if k.startswith("teacher_")})
        return
    ts = rec["train_set"]
    a.update(train_size=ts["size"], real_share=ts["real_share"])
    G.add_edge(f"base:{task.init['base']}" if "base" in task.init else task.init["node"], n, kind="initialised_from")
    weights: dict[str, float] = {}
    got: dict[str, int] = {}
    counts = ts.get("counts") or [None] * len(task.sources)
    for (wk, fi, w, e), k in zip(task.sources, counts):
        ds = dataset_of(G, wk, fi)
        weights[ds] = weights.get(ds, 0.0) + w
        got[ds] = got.get(ds, 0) + (k or 0)
    total = sum(weights.values())
    parents = ts["size"] - ts["real"]
    for ds, w in weights.items():
        writer = G.nodes[ds]["model"]
        asked = (1 - ts["real_share"]) * w / total
        # share: what the student actually took from this dataset; a parent that kept less than
        # its weight's share is topped up from the others (asked_share: what the weights asked)
        share = got[ds] / ts["size"] if "counts" in ts and ts["size"] else asked
        G.add_edge(ds, n, kind="trained_on", share=share, asked_share=asked,
                   same_base=G.nodes[writer]["base"] == a["base"], real=False)
    if "counts" in ts and len(weights) > 1:  # fan-in: a parent short of its share, topped up by the others
        short = {ds: round(weights[ds] / total * parents - got[ds]) for ds in weights}
        a["topped_up"] = {ds: k for ds, k in short.items() if k >= 1}
    if ts["real"]:
        real = f"real/{G.nodes[ds]['channel']}"
        G.add_node(real, kind="dataset", stage="real", channel=G.nodes[ds]["channel"])
        G.add_edge(real, n, kind="trained_on", share=ts["real_share"], real=True, same_base=True)


def dataset_of(G: nx.DiGraph, wk: tuple, fi: int) -> str:
    """The id of the dataset that write task ``wk`` made with its filter number ``fi``."""
    return G.graph["datasets"][json.dumps(list(wk))][fi]


def record_write(G: nx.DiGraph, task: Task, out: list) -> None:
    m = node_id(task.lineage, task.generation)
    raw = f"{m}/{task.channel}"
    total = out[0][1]["total"]
    G.add_node(raw, kind="dataset", stage="generated", channel=task.channel, size=total, model=m,
               lineage=task.lineage, generation=task.generation)
    G.add_edge(m, raw, kind="generated")
    for ds, (_, s) in zip(task.datasets, out):
        extra = {k: v for k, v in s.items() if k not in ("total", "kept", "kept_fraction", "rejected", "seconds",
                                                         "peak_gb")}
        G.add_node(ds, kind="dataset", stage="filtered", channel=task.channel, size=s["kept"], total=total,
                   kept_fraction=s["kept_fraction"], rejected=s["rejected"], model=m, status="done",
                   lineage=task.lineage, generation=task.generation, **extra)  # e.g. logit_mass_removed
        G.add_edge(raw, ds, kind="filtered")
    G.nodes[raw]["seconds"] = round(out[0][1].get("seconds", 0.0), 2)
    G.nodes[raw]["peak_gb"] = out[0][1].get("peak_gb")
    G.graph.setdefault("datasets", {})[json.dumps(list(task.key))] = list(task.datasets)


# ----------------------------------------------------------------- the run
def new_run_dir(sc, kind: str = "") -> Path:
    """OUT_DIR/NAME[KIND]-TIMESTAMP, with -1, -2... if that exists (KIND: '-sweep')."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = Path(sc.out_dir) / f"{sc.name}{kind}-{stamp}"
    i = 1
    while d.exists():
        d, i = Path(sc.out_dir) / f"{sc.name}{kind}-{stamp}-{i}", i + 1
    return d


def _fmt(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _headline(sc, metrics: dict, kinds: dict) -> str:
    """The progress line's readouts: the scenario's traits, then the substrate's other trait-like rates."""
    rates = [m for m, k in kinds.items() if k == "trait"]
    names = [n for n in dict.fromkeys(list(sc.traits) + rates) if n in metrics][:2]

    def one(n):
        valid = metrics.get(f"{n}_valid", (None,))[0]
        if not lg.measurable({f"{n}_valid": valid} if valid is not None else {}, n):
            return f"{n} not measurable (valid {valid:.2f})"
        return f"{n} {metrics[n][0]:.3f}" + (f" [{metrics[n][1]:.2f}, {metrics[n][2]:.2f}]"
                                            if metrics[n][1] is not None else "")
    return "  ".join(one(n) for n in names)


def run(sc=None, run_dir: str | Path | None = None, resume: bool = False,
        log=print, on_event=None, redo: list[str] = ()) -> dict:
    """Run a scenario (or, with ``resume``, finish the run in ``run_dir``, first recomputing the
    nodes named in ``redo`` and everything that depends on them). ``on_event(kind, info)`` is
    called after every finished task (tests use it to inject faults). Returns run.json's data."""
    from ecosim.engine.pool import LocalPool, RayPool
    from ecosim.store.tracking import Tracker
    t_start = time.time()
    if resume:
        run_dir = Path(run_dir)
        sc = load_saved(run_dir, "config.yaml", "run directory")
    else:
        if sc.sweep:
            raise EcosimError(f"{sc.name}: a sweep over {', '.join(sc.sweep)} is many runs: run it with ecosim.run "
                              "(or ecosim run on the command line), which runs every cell")
        run_dir = Path(run_dir) if run_dir else new_run_dir(sc)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(sc)))
    plan = expand(sc)
    tasks = build_tasks(plan)
    sub = registry.of(sc)
    if resume:
        for line in versions.check(run_dir):  # raises where the checkpoints mean something else now
            log(f"resume: warning: {line}")
        for line in digests.check_config(run_dir):  # raises where config.yaml's settings changed
            log(f"resume: note: {line}")
        G, todo = _verify(run_dir, plan, tasks, sub, redo, log)
    else:
        versions.record(run_dir)
        G, todo = plan_graph(plan), order(tasks)
        G.graph["datasets"] = {}
    G.graph["metric_kinds"] = dict(sub.METRICS)  # what the substrate's metrics are (the report reads it)
    skipped = len(tasks) - len(todo)
    log(f"{sc.name}: {len(plan.lineages)} lineages x {sc.generations} generations, {len(tasks)} tasks"
        + (f"; resuming {run_dir}: {skipped} finished, {len(todo)} to do" if resume else f"; run dir {run_dir}"))
    used = {l.base for l in plan.lineages.values()} | {l.init for l in plan.lineages.values() if l.init in sc.bases} \
        | {b for l in plan.lineages.values() for b in l.rotate}
    cache = os.environ.get("ECOSIM_CACHE")
    args = {n: (n, sc, spec, plan.control_of.get(n, n), spec.trait or _neutral_trait(plan, n), str(run_dir),
                cache, sc.compute.threads, _base_offset(plan, n, sub.REPLICA_SEEDS, sc.bases_per_seed), plan.seed_of(n),
                plan.writes_on(n))
            for n, spec in plan.lineages.items()}
    need = {n for k in todo for n in [tasks[k].lineage]}
    # The pool first: resources the cluster can never give are refused before any base is made.
    gb = {n: sub.lineage_gb(sc, spec.base) for n, spec in plan.lineages.items() if n in need}
    pool = RayPool({n: a for n, a in args.items() if n in need}, sc.compute, log, gb) if sc.compute.ray and todo \
        else LocalPool(args)
    try:
        prepare_s = sub.prepare(sc, used, log)
        more = {f"seed{s}": bases_of_seed(sc, s)
                for s in range(1, sc.seeds if sc.bases_per_seed and not sub.REPLICA_SEEDS else 1)}
        for sc_s in more.values():
            prepare_s += sub.prepare(sc_s, used, log)  # each seed's own bases, made once here
        if resume:  # the bases are made now: refuse any that differ from those the run started from
            for line in digests.check_bases(run_dir, sc, sub, used, more):
                log(f"resume: note: {line}")
        else:
            digests.record(run_dir, sc, sub, used, more)
    except BaseException:
        pool.close()
        raise
    tracker = Tracker(sc, run_dir, resume=resume)
    st = RunState(G, plan, tasks, run_dir, tracker, log, on_event,
                  total_cost=sum(COST[tasks[k].kind] for k in todo))
    refs, pending = {}, {}
    try:
        for k in todo:
            ref = _submit(pool, tasks[k], refs, st, sub)
            pending[ref], refs[k] = k, ref
            if isinstance(pool, LocalPool):  # already finished: record it before the next one
                _collect(pool, pending, st)
        while pending:
            _collect(pool, pending, st)
    except BaseException as e:
        stop = isinstance(e, KeyboardInterrupt)
        if stop:  # a second Ctrl-C must not cut the saving short
            old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            lg.save(G, run_dir)
            tracker.abort()
            pool.close()
        finally:
            if stop:
                signal.signal(signal.SIGINT, old_handler)
        if stop:
            raise Interrupted(f"interrupted: the finished nodes are kept in {run_dir}; go on with: "
                              f"ecosim run --resume {run_dir}") from None
        if isinstance(e, EcosimError):
            raise
        (run_dir / "error.log").write_text("".join(traceback.format_exception(e)))
        raise EcosimError(f"the run stopped on an unexpected {type(e).__name__}: {_last_line(e)} (traceback in "
                          f"{run_dir / 'error.log'}; finished nodes are kept: ecosim run --resume {run_dir})") from None
    pool.close()
    _log_generations(st)
    lg.save(G, run_dir)
    if sc.report:
        from ecosim.analysis.report import report
        report(run_dir, log=log, tracker=tracker)
    tracker.finish(G, run_dir)
    summary = {"scenario": sc.name, "run_dir": str(run_dir), "seconds": round(time.time() - t_start, 1),
               "prepare_seconds": round(prepare_s, 1), "computed": st.computed, "skipped": skipped, "tasks": len(tasks),
               "models": len(lg.models(G)), "resumed": resume}
    prev = json.loads((run_dir / "run.json").read_text()) if resume and (run_dir / "run.json").exists() else None
    if prev:
        summary["earlier"] = prev
    (run_dir / "run.json").write_text(json.dumps(summary, indent=1))
    log(f"{sc.name}: finished in {_fmt(summary['seconds'])}: computed {st.computed}, skipped {skipped}; {run_dir}")
    return summary


def _verify(run_dir: Path, plan: Plan, tasks: dict, sub, redo, log) -> tuple[nx.DiGraph, list[tuple]]:
    """The graph of a run to resume and the tasks still to do, in order: those not finished,
    those whose checkpoint or dataset no longer has the hash it was written with, those named
    in ``redo``, and everything that depends on any of them. One line per damaged node."""
    gone = rundir.remove_leftovers(run_dir)
    if gone:
        log(f"resume: removed {len(gone)} half-written file(s) a crash left (e.g. {gone[0]})")
    records = rundir.load_records(run_dir)
    ordered = order(tasks)
    G = None
    if (run_dir / "graph.json").exists():
        try:
            G = lg.load(run_dir)
        except (OSError, ValueError, KeyError, TypeError, nx.NetworkXError) as e:
            if not records:
                raise EcosimError(f"{run_dir / 'graph.json'} is damaged ({type(e).__name__}) and the run has no task "
                                  f"records to rebuild it from (it was made by an older ecosim): start it again "
                                  f"with: ecosim run {run_dir / 'config.yaml'}") from None
            log(f"resume: {run_dir / 'graph.json'} is damaged ({type(e).__name__}): rebuilding it from "
                f"{len(records)} task records")
    if G is None:
        G = plan_graph(plan)
        G.graph["datasets"] = {}
        replayed = set()
        for k in ordered:  # replay what finished, in the order it could have finished
            t = tasks[k]
            if k in records and all(d in replayed for d in t.deps):
                if t.kind == "write":
                    record_write(G, t, [(None, s) for s in records[k]])
                else:
                    record_model(G, plan, t, records[k])
                replayed.add(k)
    G.graph.setdefault("datasets", {})

    def state(k: tuple) -> str:
        """'done', 'missing' (never finished) or what is wrong with what it left."""
        t = tasks[k]
        if t.kind == "base":  # a measurement only: nothing on disk to check
            return "done" if G.nodes[f"base:{t.base}"].get("status") == "done" else "missing"
        if t.kind == "write":
            if json.dumps(list(k)) not in G.graph["datasets"]:
                return "missing"
            for d in t.datasets:
                path = dataset_path(run_dir, d, sub.DATASET_SUFFIX)
                if not rundir.intact(G.nodes[d].get("sha"), lambda: rundir.dataset_digest(path, sub.DATASET_SUFFIX)):
                    return f"dataset {path} is missing or damaged (its hash differs from when it was written)"
            return "done"
        n = node_id(t.lineage, t.generation)
        if G.nodes[n].get("status") != "done":
            return "missing"
        ckpt = checkpoint_dir(run_dir, n)
        if not (ckpt / "ecosim.json").is_file() or not rundir.intact(G.nodes[n].get("sha"), lambda: rundir.digest(ckpt)):
            return f"checkpoint {ckpt} is missing or damaged (its hash differs from when it was written)"
        return "done"

    deps = dependencies(tasks)
    bad: set[tuple] = set()
    for k in ordered:
        if k in bad:  # recomputed anyway, as it depends on a damaged node: no need to hash it
            continue
        why = state(k)
        if why == "missing":
            bad.add(k)
        elif why != "done":
            after = nx.descendants(deps, k)
            log(f"resume: {_name(tasks[k])}: {why}: recomputing it and the {len(after)} task(s) that depend on it")
            bad |= {k} | after
    for name in redo:
        k = _task_of(name, tasks)
        after = nx.descendants(deps, k)
        log(f"resume: --redo {name}: recomputing it and the {len(after)} task(s) that depend on it")
        bad |= {k} | after
    bad |= {d for k in list(bad) for d in nx.descendants(deps, k)}
    todo = [k for k in ordered if k in bad]
    for k in todo:  # until it is made again, a node to recompute is not done
        if tasks[k].kind == "base":
            G.nodes[f"base:{tasks[k].base}"]["status"] = "pending"
        elif tasks[k].kind != "write":
            G.nodes[node_id(tasks[k].lineage, tasks[k].generation)]["status"] = "pending"
        else:
            G.graph["datasets"].pop(json.dumps(list(k)), None)
    lg.save(G, run_dir)
    return G, todo


def _name(t: Task) -> str:
    if t.kind == "base":
        return f"base:{t.base}"
    return f"{node_id(t.lineage, t.generation)}/{t.channel}" if t.kind == "write" else node_id(t.lineage, t.generation)


def _task_of(name: str, tasks: dict) -> tuple:
    """The task that makes a node: a model (``owl/g1``) or a dataset (``owl/g0/numbers[/kept]``)."""
    for k, t in tasks.items():
        if name == _name(t) or (t.kind == "write" and name in t.datasets):
            return k
    models = sorted(_name(t) for t in tasks.values() if t.kind != "write")
    raise EcosimError(f"--redo {name}: no such node in this run (models: {', '.join(models)}; or a dataset "
                      f"such as {next((_name(t) for t in tasks.values() if t.kind == 'write'), 'none')})")


def _last_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else ""


@dataclass
class RunState:
    G: nx.DiGraph
    plan: Plan
    tasks: dict
    run_dir: Path
    tracker: object
    log: object
    on_event: object
    total_cost: float
    done_cost: float = 0.0
    t0: float = field(default_factory=time.time)
    logged_gen: int = -1
    graphml_at: float = 0.0
    computed: dict = field(default_factory=lambda: {"base": 0, "origin": 0, "write": 0, "train": 0})


def _submit(pool, t: Task, refs: dict, st: RunState, sub):
    """Submit one task. The refs of the tasks it depends on go along as trailing arguments: Ray
    starts a task only when its argument refs are ready, which orders work across actors."""
    after = [refs[d] for d in t.deps if d in refs and d[0] != "write"]
    if t.kind == "base":
        return pool.submit(t.lineage, "measure_base", t.base)
    if t.kind == "origin":  # a control of a teacher trained to a target gets the teacher's result
        done = [{"teacher_steps": st.G.nodes[node_id(d[1], 0)]["teacher_steps"]} for d in t.deps if d not in refs]
        return pool.submit(t.lineage, "origin", *after, *done)
    if t.kind == "write":  # a control that labels its twin's lists gets the twin's datasets, filter for filter
        tw = t.lists and (refs[t.lists] if t.lists in refs else _load_write(st.tasks[t.lists], st, sub))
        picks = [st.tasks[t.lists].filters.index(f) for f in t.filters] if t.lists else None
        return pool.submit(t.lineage, "write", t.generation, t.channel, t.filters, t.datasets, t.base, tw, picks,
                           *after)
    wks = sorted({wk for wk, *_ in t.sources} | {wk for wk, _ in t.twin})
    parts = [(wks.index(wk), fi, w) for wk, fi, w, _ in t.sources]
    twin = [(wks.index(wk), fi) for wk, fi in t.twin]
    writes = [refs[wk] if wk in refs else _load_write(st.tasks[wk], st, sub) for wk in wks]
    channel = t.sources[0][0][3]
    return pool.submit(t.lineage, "train", t.generation, t.init, parts, channel, len(writes), twin, *writes, *after)


def _collect(pool, pending: dict, st: RunState) -> None:
    """Record the tasks that have finished: graph, files, progress line, tracker."""
    sc, G = st.plan.scenario, st.G
    ready = pool.wait(list(pending))
    if not ready:
        lg.save(G, st.run_dir)
        flight = ", ".join(sorted(_name(st.tasks[k]) for k in pending.values()))
        raise EcosimError(f"no task finished in {_fmt(sc.compute.stall_s)} (compute.stall_s): still running: "
                          f"{flight}; their logs: {pool.session_logs}; finished nodes are kept: "
                          f"ecosim run --resume {st.run_dir}")
    for ref in ready:
        t = st.tasks[pending.pop(ref)]
        node = _name(t) if t.kind == "base" else node_id(t.lineage, t.generation)
        try:
            out = pool.get(ref)
        except Exception as e:
            cause = getattr(e, "cause", None) or e
            if t.kind != "write":
                G.nodes[node]["status"] = "failed"
            (st.run_dir / "error.log").write_text("".join(traceback.format_exception(cause)))
            raise EcosimError(f"{t.kind} {node} failed: {type(cause).__name__}: {_last_line(cause)} (traceback in "
                              f"{st.run_dir / 'error.log'}; finished nodes are kept: ecosim run --resume "
                              f"{st.run_dir})") from None
        st.computed[t.kind] += 1
        st.done_cost += COST[t.kind]
        rundir.save_record(st.run_dir, t.key, [s for _, s in out] if t.kind == "write" else out)
        if t.kind == "write":
            record_write(G, t, out)
            what = f"wrote {t.channel}: kept " + ", ".join(f"{s['kept']}/{s['total']}" for _, s in out)
        else:
            record_model(G, st.plan, t, out)
            verb = {"base": "measured", "origin": "made", "train": "trained"}[t.kind]
            what = f"{verb} in {out['seconds']:.0f} s: {_headline(sc, out['metrics'], G.graph.get('metric_kinds', {}))}"
        # graph.json and metrics.csv after every node; GraphML too, but at most every few seconds
        # (writing it costs ~0.2 s at 1000 nodes: most of a small MLP node's time)
        slow = time.time() - st.graphml_at > GRAPHML_EVERY_S
        lg.save(G, st.run_dir, graphml=slow)
        st.graphml_at = time.time() if slow else st.graphml_at
        elapsed = time.time() - st.t0
        left = elapsed / st.done_cost * (st.total_cost - st.done_cost)
        where = "base" if t.kind == "base" else f"gen {t.generation}/{sc.generations}"
        st.log(f"[{where}] {node:<26} {what}  (elapsed {_fmt(elapsed)}, ~{_fmt(left)} left)")
        _log_generations(st)
        if st.on_event:
            st.on_event(t.kind, {"node": node, "pool": pool, "graph": G})


def _log_generations(st: RunState) -> None:
    """Log each generation to the tracker once all its models are done, in order."""
    G = st.G
    while st.logged_gen < st.plan.scenario.generations:
        g = st.logged_gen + 1
        nodes = [n for n, a in G.nodes(data=True) if a.get("kind") == "model" and a["generation"] == g]
        if any(G.nodes[n]["status"] != "done" for n in nodes):
            break
        st.tracker.log_generation(g, [r for r in lg.metric_rows(G) if r["generation"] == g])
        st.logged_gen = g


def _load_write(task: Task, st: "RunState", sub) -> list:
    """A finished write's datasets, from the run directory (resume), with their sizes."""
    return [(sub.undump(dataset_path(st.run_dir, d, sub.DATASET_SUFFIX)),
             {"kept": st.G.nodes[d]["size"], **{k: st.G.nodes[d][k] for k in ("total", "kept_fraction", "rejected")}})
            for d in task.datasets]


def _base_offset(plan: Plan, name: str, replicas: bool, per_seed: bool) -> int:
    """Added to a base's seed: where the substrate gives each replica (and each ecosystem seed)
    its own initialisation (``replicas``), replica i of seed s gets i + MAX_REPLICAS * s; with
    ``bases_per_seed`` alone, seed s gets MAX_REPLICAS * s (its replicas share its bases)."""
    seed = plan.seed_index.get(name, 0) if replicas or per_seed else 0
    return (plan.replica_index[name] if replicas else 0) + MAX_REPLICAS * seed


def bases_of_seed(sc, s: int):
    """``sc`` with the bases ecosystem seed s starts from under ``bases_per_seed``."""
    return dataclasses.replace(sc, bases={n: offset_base(b, MAX_REPLICAS * s) for n, b in sc.bases.items()})


def _neutral_trait(plan: Plan, name: str) -> str | None:
    """The trait whose neutral data a neutral lineage's generation 0 uses: its treated twin's,
    or the scenario's first."""
    twin = plan.control_of.get(name)
    if twin:
        return plan.lineages[twin].trait
    return next(iter(plan.scenario.traits), None)
