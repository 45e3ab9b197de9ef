"""ecosim command line: ``main(argv=None) -> int`` so tests call it in-process."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ecosim.api import SCENARIOS, scenario_path  # noqa: F401  (ecosim.cli.scenario_path: older imports)
from ecosim.errors import EcosimError, Interrupted


def _kinds() -> dict:
    """The three kinds of config file: what each is called, its schema, the command that runs it."""
    from ecosim.engine.schema import Scenario
    from ecosim.substrates.mlp.config import MLPConfig
    from ecosim.studies.transmit import TransmitConfig
    return {"scenario": ("a scenario", Scenario, "ecosim run {}"),
            "transmit": ("a transmit config", TransmitConfig, "ecosim transmit --config {}"),
            "mlp": ("an MLP config", MLPConfig, "ecosim mlp --config {}")}


def _load_kind(kind: str, path: str | None, load):
    """``load()``, and when it fails on a file whose top-level keys all belong to another kind of
    config (a transmit config given to ``ecosim run``), say which command that file is for."""
    try:
        return load()
    except EcosimError as e:
        import dataclasses
        from ecosim.engine.config import read_yaml
        try:
            keys = set(read_yaml(path))
        except Exception:  # no file, not YAML, not a mapping: the error already says so
            raise e from None
        kinds = _kinds()
        fields = {k: {f.name for f in dataclasses.fields(schema)} for k, (_, schema, _) in kinds.items()}
        for other, (name, _, cmd) in kinds.items():
            if other != kind and keys <= fields[other] and not keys <= fields[kind]:
                raise EcosimError(f"{path} is {name}, not {kinds[kind][0]}: run `{cmd.format(path)}`\n{e}") from None
        raise


def _transmit(args) -> int:
    from ecosim.engine.config import load_config
    from ecosim.studies.transmit import TransmitConfig, check, from_runs, run, table
    overrides = list(args.overrides)
    if args.trait:
        overrides.append(f"trait.kind={args.trait}")
    if args.teacher:
        overrides.append(f"teacher.how={args.teacher}")
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    cfg = _load_kind("transmit", args.config, lambda: load_config(TransmitConfig(), args.config, overrides, checks=check))
    if args.from_runs:  # the table of seeds already finished (other sessions, machines): nothing runs
        return _report(lambda c, log: from_runs(c, args.from_runs), table, cfg, args.json)
    return _report(run, table, cfg, args.json)


def _report(run, table, cfg, json_path) -> int:
    """Run an experiment with progress on stderr, print its table, write its JSON."""
    if json_path:  # fail before the run, not after it, if the results cannot be written
        p = Path(json_path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EcosimError(f"--json {json_path}: cannot write there ({e.strerror})") from None
        if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise EcosimError(f"--json {json_path}: cannot write there (permission denied)")
    res = run(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(res))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(res, f, indent=1)
    return 0


def _mlp(args) -> int:
    from ecosim.engine.config import load_config
    from ecosim.substrates.mlp.mlp import MLPConfig, check, run, table
    overrides = list(args.overrides) + ([f"seeds={args.seeds}"] if args.seeds is not None else [])
    cfg = _load_kind("mlp", args.config, lambda: load_config(MLPConfig(), args.config, overrides, checks=check))
    return _report(run, table, cfg, args.json)


def _load(args):
    from ecosim.engine.schema import check, load_scenario
    overrides = list(args.overrides)
    if getattr(args, "ray_address", None):
        overrides.append(f"compute.address={args.ray_address}")
    if getattr(args, "out_dir", None):
        overrides.append(f"out_dir={args.out_dir}")
    if getattr(args, "seeds", None) is not None:
        overrides.append(f"seeds={args.seeds}")
    path = scenario_path(args.scenario)
    sc = _load_kind("scenario", path, lambda: load_scenario(path, overrides))
    if getattr(args, "sweep", None):
        sc.sweep = {**sc.sweep, **_sweep_arg(args.sweep)}
        problems = check(sc)
        if problems:
            raise EcosimError("invalid config:\n  " + "\n  ".join(problems))
    return sc


def _run(args) -> int:
    from ecosim import api
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.resume:
        if args.scenario or args.overrides or args.sweep or args.seeds:
            raise EcosimError("--resume RUN_DIR takes no scenario or overrides: the run directory has its config")
        res = api.resume(args.resume, log=log, redo=args.redo or ())
    else:
        if args.redo:
            raise EcosimError("--redo NODE goes with --resume RUN_DIR: it recomputes a node of a finished run")
        if not args.scenario:
            raise EcosimError("ecosim run: name a scenario file (or a shipped scenario: ecosim list)")
        sc = _load(args)
        res = api.run(sc, log=log)
    print(res.dir)
    return 0


def _sweep_arg(items: list[str]) -> dict:
    """--sweep KEY=V1,V2 (repeatable) as a grid; each value read as YAML (0.5, true, a name)."""
    import yaml
    grid = {}
    for item in items:
        key, sep, vals = item.partition("=")
        if not sep or not key or not vals:
            raise EcosimError(f"--sweep {item}: expected KEY=V1,V2,... (e.g. --sweep data.real_share=0,0.25,0.5)")
        grid[key] = [yaml.safe_load(v) for v in vals.split(",")]
    return grid


def _validate(args) -> int:
    from ecosim.engine.grid import cells
    from ecosim.engine.plan import expand
    from ecosim.engine.tasks import build_tasks
    sc = _load(args)
    plan = expand(sc)
    tasks = build_tasks(plan)
    print(f"{args.scenario}: ok: {len(plan.lineages)} lineages ({', '.join(plan.lineages)}), "
          f"{sc.generations} generations, {sum(t.kind in ('origin', 'train') for t in tasks.values())} models, "
          f"{sum(t.kind == 'write' for t in tasks.values())} datasets, "
          f"{sum(t.kind == 'base' for t in tasks.values())} bases measured as they are"
          + (f"; a sweep of {len(cells(sc.sweep))} such runs over {', '.join(sc.sweep)}" if sc.sweep else ""))
    return 0


def _report_cmd(args) -> int:
    from ecosim.analysis import report
    from ecosim.studies import sweep
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    make = sweep.report if (Path(args.run_dir) / "sweep.json").is_file() else report.report
    print(make(args.run_dir, log=log))
    return 0


def _list(args) -> int:
    for p in sorted(SCENARIOS.glob("*.yaml")):
        desc = next((l.split(":", 1)[1].strip().strip('"') for l in p.read_text().splitlines()
                     if l.startswith("description:")), "")
        print(f"{p.stem:<22} {desc}")
    return 0


def _schema(args) -> int:
    from ecosim.engine import schema_doc
    text = schema_doc.markdown()
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise EcosimError(f"--out {args.out}: cannot write there ({e.strerror})") from None
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecosim", description="Simulate trait transmission between models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transmit", help="single-hop experiment: teacher -> filtered data -> students")
    t.add_argument("--config", help="YAML file (keys as in TransmitConfig)")
    t.add_argument("--trait", choices=["preference", "misalignment"])
    t.add_argument("--teacher", choices=["finetune", "prompt"])
    t.add_argument("--seeds", type=int)
    t.add_argument("--json", help="write the results here")
    t.add_argument("--from-runs", nargs="+", metavar="SEED_DIR",
                   help="run nothing: the table over these finished seeds' run directories (OUT_DIR/seedN) "
                        "of this config, e.g. seeds run in different sessions")
    t.add_argument("overrides", nargs="*", help="key=value config overrides")
    t.set_defaults(fn=_transmit)
    m = sub.add_parser("mlp", help="MLP auxiliary-logit demonstration on sklearn digits")
    m.add_argument("--config")
    m.add_argument("--seeds", type=int)
    m.add_argument("--json")
    m.add_argument("overrides", nargs="*")
    m.set_defaults(fn=_mlp)
    r = sub.add_parser("run", help="run an ecosystem scenario (a YAML file or a shipped scenario name)")
    r.add_argument("scenario", nargs="?")
    r.add_argument("overrides", nargs="*", help="key=value scenario overrides")
    r.add_argument("--resume", metavar="RUN_DIR",
                   help="finish an interrupted run; damaged nodes are recomputed. Refuses (exit 2) when a base "
                        "or a config.yaml setting changed since the run started (digests.json): restore it, "
                        "or start a new run")
    r.add_argument("--redo", metavar="NODE", action="append",
                   help="with --resume: recompute this node (a model such as owl/g1, or a dataset such as "
                        "owl/g0/numbers) and everything that depends on it; may be repeated")
    r.add_argument("--ray-address", help="run on an existing Ray cluster (also RAY_ADDRESS)")
    r.add_argument("--out-dir", help="where run directories go (default: runs/)")
    r.set_defaults(fn=_run)
    v = sub.add_parser("validate", help="check a scenario and report every problem at once")
    v.add_argument("scenario")
    v.add_argument("overrides", nargs="*")
    for q in (r, v):
        q.add_argument("--seeds", type=int, help="run the whole ecosystem N times with derived seeds (= seeds=N)")
        q.add_argument("--sweep", metavar="KEY=V1,V2", action="append",
                       help="a sweep over a scenario key (repeatable: a grid); every cell x seed is a run")
    v.set_defaults(fn=_validate)
    rp = sub.add_parser("report", help="write RUN_DIR/report/index.html: lineage graph, drift plots, summary "
                                       "(of a sweep directory: the cells compared)")
    rp.add_argument("run_dir")
    rp.set_defaults(fn=_report_cmd)
    ls = sub.add_parser("list", help="the shipped scenarios, one line each")
    ls.set_defaults(fn=_list)
    sc = sub.add_parser("schema", help="every scenario key with its type, default, rule and meaning, as markdown "
                                       "(docs/scenarios.md is its output)")
    sc.add_argument("--out", metavar="PATH", help="write it here (e.g. docs/scenarios.md) instead of stdout")
    sc.set_defaults(fn=_schema)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except Interrupted as e:
        print(f"ecosim: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("ecosim: interrupted", file=sys.stderr)
        return 130
    except EcosimError as e:
        print(f"ecosim: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in ecosim, or a library failing in a way ecosim did not foresee
        import tempfile
        import traceback
        log = Path(tempfile.gettempdir()) / f"ecosim-error-{os.getpid()}.log"
        log.write_text("".join(traceback.format_exception(e)))
        msg = str(e).strip().splitlines()
        print(f"ecosim: unexpected {type(e).__name__}: {msg[-1] if msg else ''} (traceback in {log}; "
              "please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
