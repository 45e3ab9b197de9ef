"""ecosim command line: ``main(argv=None) -> int`` so tests call it in-process."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import EcosimError


def _transmit(args) -> int:
    from .config import load_config
    from .transmit import TransmitConfig, check, run, table
    overrides = list(args.overrides)
    if args.trait:
        overrides.append(f"trait.kind={args.trait}")
    if args.teacher:
        overrides.append(f"teacher.how={args.teacher}")
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    return _report(run, table, load_config(TransmitConfig(), args.config, overrides, checks=check), args.json)


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
    from .config import load_config
    from .mlp import MLPConfig, check, run, table
    overrides = list(args.overrides) + ([f"seeds={args.seeds}"] if args.seeds is not None else [])
    return _report(run, table, load_config(MLPConfig(), args.config, overrides, checks=check), args.json)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecosim", description="Simulate trait transmission between models.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transmit", help="single-hop experiment: teacher -> filtered data -> students")
    t.add_argument("--config", help="YAML file (keys as in TransmitConfig)")
    t.add_argument("--trait", choices=["preference", "misalignment"])
    t.add_argument("--teacher", choices=["finetune", "prompt"])
    t.add_argument("--seeds", type=int)
    t.add_argument("--json", help="write the results here")
    t.add_argument("overrides", nargs="*", help="key=value config overrides")
    t.set_defaults(fn=_transmit)
    m = sub.add_parser("mlp", help="MLP auxiliary-logit demonstration on sklearn digits")
    m.add_argument("--config")
    m.add_argument("--seeds", type=int)
    m.add_argument("--json")
    m.add_argument("overrides", nargs="*")
    m.set_defaults(fn=_mlp)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except EcosimError as e:
        print(f"ecosim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
