"""Wall, CPU and peak RSS of one stage of work, child processes included (Linux).

``with Stage("name", rows) as st: ...`` measures:

* **wall** (perf_counter) and **CPU s**: this process's (all threads) plus its waited-for
  children's (``RUSAGE_CHILDREN`` delta); **other CPU %**: the share of all cores that other
  processes used meanwhile (the machine's busy time from /proc/stat minus ours): the machine is
  shared, so read every wall with it;
* **peak RSS**: the largest of this process's high-water mark (``VmHWM``, reset at the start of
  the stage through ``/proc/self/clear_refs``), the largest sum of RSS over this process and all
  its descendants sampled every 50 ms (psutil; catches worker pools and subprocesses running at
  the same time), and the largest RSS of any child waited for during the stage
  (``RUSAGE_CHILDREN.ru_maxrss``, which only grows: reported only when it grew in the stage).

``watch_child`` measures a subprocess from the outside (wall, CPU, sampled tree RSS).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import threading
import time
from pathlib import Path

import psutil


def vm_hwm_mb(pid: int | str = "self") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def reset_peak_rss() -> None:
    """Start a new VmHWM measurement for this process (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class TreeSampler(threading.Thread):
    """Samples the summed RSS of process ``pid`` and its descendants until stopped."""

    def __init__(self, pid: int | None = None, interval: float = 0.05):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid or os.getpid())
        self.interval, self.peak_mb = interval, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_mb = max(self.peak_mb, self.sample())
            self._stop_event.wait(self.interval)

    def sample(self) -> float:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def stop(self) -> float:
        self.peak_mb = max(self.peak_mb, self.sample())
        self._stop_event.set()
        self.join()
        return self.peak_mb


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat, not idle or iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def other_cpu_pct(busy_before: float, own_cpu_s: float, wall_s: float) -> float:
    """Share of all cores other processes used while we ran (the machine is shared)."""
    other = busy_cpu_s() - busy_before - own_cpu_s
    return round(100 * max(other, 0.0) / max(wall_s * (os.cpu_count() or 1), 1e-9), 1)


def _children_usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


class Stage:
    """Measure one stage; the result is ``self.result`` (a dict) after the block."""

    def __init__(self, name: str, rows: int = 0, **extra):
        self.name, self.rows, self.extra = name, rows, extra
        self.result: dict = {}

    def __enter__(self) -> Stage:
        reset_peak_rss()
        self._children_cpu, self._children_max = _children_usage()
        self._sampler = TreeSampler()
        self._sampler.start()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        self._busy = busy_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        tree_peak = self._sampler.stop()
        children_cpu, children_max = _children_usage()
        child_peak = children_max if children_max > self._children_max else 0.0
        own_cpu = cpu + children_cpu - self._children_cpu
        self.result = {
            "stage": self.name,
            "wall_s": round(wall, 2),
            "cpu_s": round(own_cpu, 2),
            "other_cpu_pct": other_cpu_pct(self._busy, own_cpu, wall),
            "rows": self.rows,
            "rows_per_s": round(self.rows / wall) if wall > 0 and self.rows else None,
            "peak_rss_mb": round(max(vm_hwm_mb(), tree_peak, child_peak)),
            "peak_rss_self_mb": round(vm_hwm_mb()),
            "peak_rss_tree_sampled_mb": round(tree_peak),
            **self.extra,
        }


def watch_child(popen, interval: float = 0.05) -> dict:
    """Wait for ``popen`` while sampling its process tree: wall, CPU (the child and everything
    it waited for) and the largest sampled RSS sum of its tree. The child's own VmHWM cannot be
    read once it exits: a child that matters reports it itself (see ``vm_hwm_mb``)."""
    sampler = TreeSampler(popen.pid, interval)
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_s()
    sampler.start()
    popen.wait()
    sampler._stop_event.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "other_cpu_pct": other_cpu_pct(busy, cpu, wall),
        "peak_rss_tree_sampled_mb": round(sampler.peak_mb),
        "returncode": popen.returncode,
    }
