"""One lineage's models, generation by generation: a plain class (``pool.py`` runs it as a Ray
actor; without Ray the engine calls it directly). Every model it makes is checkpointed before its
record is returned, and any model can be rebuilt from the run directory, so a restarted actor
(its state lost) carries on where the crashed one stopped."""
from __future__ import annotations

import dataclasses
import functools
import json
from collections import OrderedDict
import os
import time
from pathlib import Path

from ecosim.engine import registry, seeds
from ecosim.engine.memory import Peak, release
from ecosim.engine.plan import node_id
from ecosim.store.rundir import atomic_dir, dataset_digest, digest


def derive_seed(seed: int, key: str, generation: int, purpose: str) -> int:
    """Mesa-style derived seed: one scenario seed, an independent stream per (key, generation,
    purpose). A control lineage uses its treated twin's key, so both see the same randomness."""
    return seeds.seed(seed, key, generation, purpose)


def offset_base(bc, k: int):
    """Base config ``bc`` with its seed moved by ``k`` (a replica's or an ecosystem seed's own base;
    ``seeds.offset``: results stand on this arithmetic)."""
    return dataclasses.replace(bc, seed=seeds.offset(bc.seed, k)) if k else bc


def checkpoint_dir(run_dir: Path, node: str) -> Path:
    return Path(run_dir) / "checkpoints" / node


def dataset_path(run_dir: Path, dataset: str, suffix: str) -> Path:
    return Path(run_dir) / "datasets" / f"{dataset}{suffix}"


def with_peak(fn):
    """A task whose result (a record, or a write's (examples, summary) pairs) also carries
    ``peak_gb``: the peak memory of the process while it ran (``memory.Peak``)."""
    @functools.wraps(fn)
    def run(*args, **kw):
        with Peak() as p:
            out = fn(*args, **kw)
        release()  # what the task freed goes back to the system before the next one
        for rec in ([s for _, s in out] if isinstance(out, list) else [out]):
            rec["peak_gb"] = p.gb
        return out
    return run


class Lineage:
    def __init__(self, name: str, sc, spec, key: str, trait: str | None, run_dir: str,
                 cache: str | None = None, threads: int = 1, base_offset: int = 0, seed: int | None = None,
                 channel: str | None = None):
        """``key``: the seed key (a control's is its treated twin's name); ``trait``: the trait
        generation 0 carries, or, for a neutral lineage, the trait whose neutral data it uses;
        ``seed``: its ecosystem seed's (``Plan.seed_of``; None: the scenario's); ``channel``: the
        one it writes on (``Plan.writes_on``; None: data.channel)."""
        if cache:
            os.environ["ECOSIM_CACHE"] = cache
        self.name, self.sc, self.key, self.run_dir = name, sc, key, Path(run_dir)
        self.seed = sc.seed if seed is None else seed
        self.spec = spec
        self.channel = channel or sc.data.channel
        self.trait_name = trait
        self.base_offset = base_offset  # replica i's bases have seed + i (substrates with REPLICA_SEEDS)
        self.sub = registry.of(sc)
        self.sub.set_threads(threads)
        self.world = self.sub.world_of(sc)
        self._bases: dict[str, object] = {}
        self._models: OrderedDict[str, tuple[object, str]] = OrderedDict()  # the few used last (HELD_MODELS)

    def pid(self) -> int:
        return os.getpid()

    def base(self, name: str):
        if name not in self._bases:
            bc = self.sc.bases[name]
            bc = offset_base(bc, self.base_offset)
            self._bases[name] = self.sub.load_base(bc, self.sc, name)
        return self._bases[name]

    def model(self, node: str):
        """(model, system prompt) of any finished node of the run, from memory or its checkpoint."""
        if node not in self._models:
            path = checkpoint_dir(self.run_dir, node)
            meta = json.loads((path / "ecosim.json").read_text())
            start = self.base(meta["start_base"]) if meta.get("start_base") else self.model(meta["start_node"])[0]
            self._hold(node, (self.sub.load(path, start, meta, self.world), meta.get("system", self.sub.NO_SYSTEM)))
        self._models.move_to_end(node)
        return self._models[node]

    def _hold(self, node: str, entry: tuple) -> None:
        """Keep ``node``'s model in memory, dropping the least recently used beyond the substrate's
        HELD_MODELS (its own last ones and the parents it trains and writes from): any model
        can be rebuilt from its checkpoint, and a long chain must not hold every generation."""
        self._models[node] = entry
        self._models.move_to_end(node)
        while len(self._models) > self.sub.HELD_MODELS:
            self._models.popitem(last=False)

    def _make_room(self) -> None:
        """Before a training: hold at most HELD_MODELS - 1 models, so that with the one it makes the
        lineage never holds more than HELD_MODELS (a real model's training copy, its gradients and
        activations come on top; its start is kept alive by the caller, held or not)."""
        while self._models and len(self._models) >= self.sub.HELD_MODELS:
            self._models.popitem(last=False)
        release()

    def _finish(self, node: str, model, system: str, adapter, meta: dict, base_name: str, t0: float) -> dict:
        meta = {**meta, "system": system}
        path = checkpoint_dir(self.run_dir, node)
        atomic_dir(path, lambda p: self.sub.save(p, model, adapter, meta, self.world))
        self._hold(node, (model, system))
        metrics = self.sub.measure(model, system, self.base(base_name), self.world, self.sc, seed=self.seed)
        return {"node": node, "metrics": metrics, "seconds": time.time() - t0, "pid": os.getpid(),
                "sha": digest(path)}

    @with_peak
    def measure_base(self, name: str) -> dict:
        """A base as it is (no trait, no training), measured as every model is, under no system
        prompt: the reference beside the teachers and students (the engine asks a lineage with
        no replica offset, so this is the configured base)."""
        t0 = time.time()
        base = self.base(name)
        metrics = self.sub.measure(base, self.sub.NO_SYSTEM, base, self.world, self.sc, seed=self.seed)
        return {"node": f"base:{name}", "metrics": metrics, "seconds": time.time() - t0, "pid": os.getpid()}

    @with_peak
    def origin(self, *after) -> dict:
        """Generation 0: the lineage's base given its trait (or the matching neutral treatment).
        ``after``: the treated twin's origin result, for a control whose teacher trained to a
        target strength (it trains as many updates: ``teacher_steps``)."""
        t0 = time.time()
        spec, sc = self.spec, self.sc
        trait = sc.traits.get(self.trait_name) if self.trait_name else None
        neutral = spec.trait is None
        seed = derive_seed(self.seed, self.key, 0, "origin")
        steps = next((a["teacher_steps"] for a in after if isinstance(a, dict) and "teacher_steps" in a), None)
        kw = {"steps": steps} if steps is not None else {}
        # a substrate returns (model, system, adapter), or with a 4th: what happened (a dict)
        model, system, adapter, *info = self.sub.make_origin(self.base(spec.base), self.world, sc, spec.origin,
                                                             trait, neutral, seed, self.channel, **kw)
        info = info[0] if info else {}
        meta = {"start_base": spec.base, "same_as_start": adapter is None and spec.origin in ("base", "prompt"),
                "train": _asdict(sc.teacher), **info}
        return {**self._finish(node_id(self.name, 0), model, system, adapter, meta, spec.base, t0), **info}

    @with_peak
    def write(self, g: int, channel: str, filters: list, dataset_ids: list[str], base_name: str | None,
              twin: list | None, picks: list[int] | None, *after) -> list:
        """Generation g's model writes on ``channel``; one filtered dataset per filter, each saved.
        ``base_name``: the base its weights descend from, loaded only if a filter asks for it (a
        defense that compares writer and base); ``twin``: a control's treated twin's write result,
        whose lists (its filter ``picks[i]`` for this write's filter i) this model labels
        (``labels_twin``), else None; ``after``: results of the tasks this one waits for (unused
        here)."""
        t0 = time.time()
        model, system = self.model(node_id(self.name, g))
        # a channel that samples another's texts uses that channel's random stream
        stream = self.sub.SAMPLES_OF.get(channel, channel)
        seed = derive_seed(self.seed, self.key, g, f"write {stream}")
        base = (lambda: self.base(base_name)) if base_name else None
        kw = {"lists": [twin[i] for i in picks]} if twin is not None else {}
        out = self.sub.write(model, system, self.world, self.sc, channel, filters, seed, base=base, **kw)
        for (examples, summary), ds in zip(out, dataset_ids):
            path = dataset_path(self.run_dir, ds, self.sub.DATASET_SUFFIX)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.sub.dump(examples, path)  # atomic: the dataset exists once its path does
            summary["sha"] = dataset_digest(path, self.sub.DATASET_SUFFIX)
        return [(ex, {**summary, "seconds": time.time() - t0}) for ex, summary in out]

    @with_peak
    def train(self, g: int, init: dict, parts: list[tuple[int, int, float]], channel: str, n_writes: int,
              twin: list[tuple[int, int]], *writes_then_after) -> dict:
        """A student at generation g. ``init``: {'base': name} or {'node': id} to start from;
        ``parts``: (index into the writes, filter index, weight) for each parent dataset; the
        first ``n_writes`` trailing arguments are write results: the parents', and those of the
        datasets the control twin (or treated twin) trains on at this generation, ``twin``:
        (index into the writes, filter index). Twins train on the same number of examples:
        at most the smaller of the two pools."""
        writes = writes_then_after[:n_writes]
        t0 = time.time()
        sc = self.sc
        if init.get("base"):
            start, base_name = self.base(init["base"]), init["base"]
        else:
            start, base_name = self.model(init["node"])[0], init["base_of_node"]
        datasets = [(writes[i][f][0], w) for i, f, w in parts]
        seed = derive_seed(self.seed, self.key, g, "train")
        size = None
        if twin:
            pool = sum(writes[i][f][1]["kept"] for i, f in {(i, f) for i, f, _ in parts})
            size = min(pool, sum(writes[i][f][1]["kept"] for i, f in set(map(tuple, twin))))
        examples, train_set = self.sub.assemble(datasets, self.world, sc, channel, seed, size=size)
        if not train_set["size"]:
            from ecosim.errors import EcosimError
            raise EcosimError(f"{node_id(self.name, g)}: its parents' filtered datasets are empty: nothing to train on")
        self._make_room()
        model, adapter = self.sub.train(start, self.world, examples, sc, self.spec, seed)
        meta = {"start_base": init.get("base"), "start_node": init.get("node"), "train": _asdict(self.spec.student)}
        rec = self._finish(node_id(self.name, g), model, self.sub.NO_SYSTEM, adapter, meta, base_name, t0)
        return {**rec, "train_set": train_set}


def _asdict(cfg) -> dict:
    from dataclasses import asdict
    return asdict(cfg)
