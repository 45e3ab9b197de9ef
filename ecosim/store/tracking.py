"""Weights & Biases: the only module that imports wandb. One W&B run per scenario run, offline by
default (files under RUN_DIR/wandb; ``wandb sync`` uploads them later), ``disabled`` in tests.
Per-generation metrics use ``generation`` as the step; at the end, tables of nodes and datasets
and the graph files. The networkx graph stays the source of truth (offline W&B cannot use
artifacts)."""
from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path


class Tracker:
    def __init__(self, sc, run_dir: Path, resume: bool = False):
        self.run = None
        if sc.tracking.wandb == "disabled":
            return
        import wandb
        run_dir = Path(run_dir)
        id_file = run_dir / "wandb_id.txt"
        if resume and id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:8]
            id_file.write_text(run_id)
        self.run = wandb.init(project=sc.tracking.project, entity=sc.tracking.entity, mode=sc.tracking.wandb,
                              dir=str(run_dir), name=run_dir.name, id=run_id, resume="allow",
                              config=asdict(sc), settings=wandb.Settings(console="off", silent=True))
        self.run.define_metric("generation")
        self.run.define_metric("*", step_metric="generation")

    def log_generation(self, g: int, rows: list[dict]) -> None:
        """``rows``: metric rows (as in metrics.csv) of generation g's model nodes."""
        if self.run is None:
            return
        self.run.log({"generation": g, **{f"{r['lineage']}/{r['metric']}": r["value"] for r in rows}})

    def log_report(self, out: Path, rows: list[dict], page: str) -> None:
        """The report's figures as images, its summary as a table and the page itself."""
        if self.run is None:
            return
        import wandb
        images = {f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(Path(out).glob("*.png"))}
        cols = ["lineage", "replicas", "gen0", "final_generation", "final", "control", "lift", "p_value", "test"]
        table = wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])
        self.run.log({**images, "report/summary": table, "report/page": wandb.Html(page)})

    def finish(self, G, run_dir: Path) -> None:
        if self.run is None:
            return
        import wandb
        nodes = [(n, a) for n, a in G.nodes(data=True) if a.get("kind") == "model"]
        cols = sorted({k for _, a in nodes for k, v in a.items() if isinstance(v, (int, float, str))})
        self.run.log({"nodes": wandb.Table(columns=["node"] + cols,
                                           data=[[n] + [a.get(c) for c in cols] for n, a in nodes])})
        ds = [(n, a) for n, a in G.nodes(data=True) if a.get("kind") == "dataset"]
        dcols = ["channel", "stage", "size", "kept_fraction", "rejected", "real_share"]
        self.run.log({"datasets": wandb.Table(
            columns=["dataset"] + dcols,
            data=[[n] + [json.dumps(a[c]) if isinstance(a.get(c), dict) else a.get(c) for c in dcols] for n, a in ds])})
        for f in ("graph.json", "graph.graphml", "metrics.csv"):  # files in run.dir are synced with the run
            shutil.copy(Path(run_dir) / f, Path(self.run.dir) / f)
        self.run.finish()

    def abort(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)
