"""Run a command and sample the machine's used memory (MemTotal - MemAvailable) while it runs;
with --run, add each node's peak (the ``peak_gb`` every task records: the resident set size of
the process that ran it, a Ray lineage actor's or the engine's own) from the run's graph.json.

  python bench/memory_watch.py --out docs/bench/smollm2_owl_ray.json --run results/mem_ray -- \
      ecosim run smollm2_owl compute.ray=true out_dir=results/mem_ray

Linux only (/proc/meminfo). Reports the peak and the baseline before the command started."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


def used_gb() -> float:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, v = line.split(":", 1)
        info[k] = int(v.split()[0]) * 1024
    return (info["MemTotal"] - info["MemAvailable"]) / 1e9


def node_peaks(run: Path) -> dict:
    """node -> {peak_gb, pid, seconds} for every node of the run that recorded a peak."""
    g = json.loads((run / "graph.json").read_text())
    return {n["id"]: {k: n.get(k) for k in ("peak_gb", "pid", "seconds", "lineage")}
            for n in g["nodes"] if n.get("peak_gb") is not None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON file for the result")
    ap.add_argument("--run", help="the run directory the command writes, or the --out-dir it writes "
                    "one into (for per-node peaks)")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given (put it after --)")
    base = used_gb()
    peak, trace, stop = [base], [], threading.Event()
    t0 = time.time()

    def sample():
        while not stop.wait(a.every):
            u = used_gb()
            peak[0] = max(peak[0], u)
            trace.append((round(time.time() - t0, 1), round(u, 3)))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = subprocess.call(cmd)
    stop.set()
    th.join()
    out = {"command": " ".join(cmd), "rc": rc, "wall_s": round(time.time() - t0, 1),
           "used_gb_before": round(base, 3), "used_gb_peak": round(peak[0], 3),
           "added_gb_peak": round(peak[0] - base, 3), "every_s": a.every,
           "trace": trace[::max(1, len(trace) // 400)]}
    run = Path(a.run) if a.run else None
    if run and not (run / "graph.json").exists():  # --out-dir given: the newest run directory in it
        runs = sorted(run.glob("*/graph.json"), key=lambda p: p.stat().st_mtime)
        run = runs[-1].parent if runs else None
    if run:
        out["run_dir"] = str(run)
        nodes = node_peaks(run)
        out["nodes"] = nodes
        by_pid: dict = {}
        for n, v in nodes.items():
            if v["pid"] is not None:  # a dataset node records no pid (its writer's model node does)
                by_pid.setdefault(v["pid"], []).append(v["peak_gb"])
        out["process_peak_gb"] = {str(p): max(v) for p, v in by_pid.items()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wall {out['wall_s']} s; used memory {out['used_gb_before']} GB before, peak {out['used_gb_peak']} GB"
          + (f"; per process peaks {out['process_peak_gb']}" if "process_peak_gb" in out else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
