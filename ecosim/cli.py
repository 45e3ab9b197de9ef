"""ecosim command line: ``main(argv=None) -> int`` so tests call it in-process."""
from __future__ import annotations

import argparse
import json
import sys

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
    cfg = load_config(TransmitConfig(), args.config, overrides, checks=check)
    res = run(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


def _mlp(args) -> int:
    from .config import load_config
    from .mlp import MLPConfig, check, run, table
    overrides = list(args.overrides) + ([f"seeds={args.seeds}"] if args.seeds is not None else [])
    cfg = load_config(MLPConfig(), args.config, overrides, checks=check)
    res = run(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
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
