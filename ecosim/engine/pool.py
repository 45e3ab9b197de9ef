"""Where lineages run: as Ray actors (one per lineage, fractional CPUs so several share a small
machine, restarted after a crash), or in this process one call after another. Both pools have
the same three methods, so the generation loop does not care which it has:

    ref = pool.submit(lineage, method, *args)   # args may hold refs of earlier submits
    ready = pool.wait(refs)                       # some finished refs
    value = pool.get(ref)"""
from __future__ import annotations

import math
import os
import time

from ecosim.errors import EcosimError
from ecosim.engine.lineage import Lineage
from ecosim.engine.memory import thaw


class LocalPool:
    """Every lineage in this process; a submit runs at once (refs are finished values)."""

    def __init__(self, make_args: dict[str, tuple]):
        import torch
        self.make_args, self.lineages = make_args, {}
        self.threads = torch.get_num_threads()  # a Lineage sets its own; given back on close

    def submit(self, lineage: str, method: str, *args):
        if lineage not in self.lineages:
            self.lineages[lineage] = Lineage(*self.make_args[lineage])
        args = [a.value if isinstance(a, _Done) else a for a in args]
        try:
            return _Done(getattr(self.lineages[lineage], method)(*args))
        except Exception as e:  # raised by get(), as Ray does, so that errors are handled in one place
            return _Done(error=e)

    def wait(self, refs: list):
        return list(refs)

    session_logs = None

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value

    def close(self):
        import torch
        self.lineages.clear()
        thaw()  # what this process froze while its lineages ran (memory.release)
        torch.set_num_threads(self.threads)


def _session_logs(ray) -> str:
    """Where this Ray session's worker logs are (named when a task stalls)."""
    try:  # no public API gives the session directory
        return os.path.join(ray._private.worker._global_node.get_session_dir_path(), "logs")
    except Exception:
        return "/tmp/ray/session_latest/logs (Ray's default)"


class _Done:
    def __init__(self, value=None, error: Exception | None = None):
        self.value, self.error = value, error


def start_ray(compute) -> bool:
    """Start (or connect to) Ray unless this process already has it; True if it started it here.
    A pool shuts down only a Ray it started, so a caller that starts one first (a sweep) keeps
    one instance across runs."""
    import ray
    if ray.is_initialized():
        return False
    address = compute.address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kw = {"address": address} if address else {"num_cpus": compute.cpus or os.cpu_count()}
    try:
        ray.init(**kw, include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
    except Exception as e:  # ConnectionError, RuntimeError...: one line for the user
        raise EcosimError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return True


def memory_problem(need: dict[str, float | None], have_gb: float, source: str) -> str | None:
    """One line when lineage actors of ``need`` GB each (by lineage; None: not known, not counted)
    cannot fit in the ``have_gb`` Ray has for tasks (None: they fit, or nothing is known)."""
    known = {n: g for n, g in need.items() if g}
    total = sum(known.values())
    if not known or total <= have_gb:
        return None
    lo, hi = min(known.values()), max(known.values())
    each = f"~{hi:g} GB" if lo == hi else f"~{lo:g}-{hi:g} GB"
    return (f"compute: {len(known)} lineage actors x {each} ({source}) = {total:.1f} GB, more than the "
            f"{have_gb:.1f} GB Ray has for tasks here; run them in one process (compute.ray=false), with fewer "
            "lineages, or set compute.memory_per_lineage if you know better")


class RayPool:
    """One Ray actor per lineage. A crashed actor restarts (its constructor re-runs, so it reloads
    models from the run directory's checkpoints) and Ray retries its unfinished calls."""

    def __init__(self, make_args: dict[str, tuple], compute, log=print, lineage_gb: dict | None = None):
        """``lineage_gb``: lineage -> the memory its actor needs (the substrate's ``lineage_gb``,
        measured; None: not known)."""
        import ray
        self.ray, self.actors = ray, {}
        self.started = start_ray(compute)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        gpus = ray.cluster_resources().get("GPU", 0.0)
        n = len(make_args)
        need = {name: compute.memory_per_lineage or (lineage_gb or {}).get(name) for name in make_args}
        why = memory_problem(need, ray.cluster_resources().get("memory", 0.0) / 1e9,
                             "compute.memory_per_lineage" if compute.memory_per_lineage else "measured for their bases")
        if why:
            self.close()
            raise EcosimError(why)
        # An actor holds its CPUs for life: share them out so that every lineage fits at once.
        per_cpu = compute.cpus_per_lineage or max(0.01, math.floor(cpus / n * 100) / 100)
        if per_cpu * n > cpus + 1e-9:
            raise EcosimError(f"compute.cpus_per_lineage: {n} lineages x {per_cpu} CPUs do not fit in the "
                              f"cluster's {cpus:g} CPUs (every lineage actor lives for the whole run)")
        per_gpu = compute.gpus_per_lineage if compute.gpus_per_lineage is not None else (
            round(gpus / n, 3) if gpus else 0)
        if per_gpu * n > gpus + 1e-9:  # an actor that can never be placed would be waited for, for ever
            raise EcosimError(f"compute.gpus_per_lineage: {n} lineages x {per_gpu:g} GPU asked, the cluster has "
                              f"{gpus:g} GPUs (every lineage actor lives for the whole run); lower it, or leave it "
                              "unset to share what there is")
        self.stall_s = compute.stall_s
        self.session_logs = _session_logs(ray)
        actor = ray.remote(Lineage)
        env = {"ECOSIM_DEVICE": "cuda"} if per_gpu else {}
        self.actors = {name: actor.options(num_cpus=per_cpu, num_gpus=per_gpu, name=None,
                                           max_restarts=compute.max_restarts,
                                           max_task_retries=compute.max_restarts,
                                           runtime_env={"env_vars": env} if env else None).remote(*args)
                       for name, args in make_args.items()}
        log(f"ray: {n} lineage actors, {per_cpu} CPU{f' and {per_gpu} GPU' if per_gpu else ''} each "
            f"({cpus:g} CPUs{f', {gpus:g} GPUs' if gpus else ''} in the cluster)")

    def submit(self, lineage: str, method: str, *args):
        return getattr(self.actors[lineage], method).remote(*args)

    def wait(self, refs: list):
        """Some finished refs; none when nothing finished within ``compute.stall_s``. Waits in
        slices of a second: a Ctrl-C reaches the driver only between them (one long ray.wait
        would keep it until a task finished)."""
        t0 = time.time()
        while True:
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
            if ready or (self.stall_s is not None and time.time() - t0 >= self.stall_s):
                return ready

    def get(self, ref):
        return self.ray.get(ref)

    def close(self):
        for a in self.actors.values():
            self.ray.kill(a, no_restart=True)
        self.actors = {}
        if self.started:
            self.ray.shutdown()
