"""CPU time per thread of a running worker process, over a stretch of its life: which
threads the worker's CPU goes to (the event loop, the store's thread pool, the encoder,
native threads such as a BLAS pool's). Python threads are named with py-spy's dump where
py-spy is installed; the others show as native.

    .venv/bin/interest-stream bench e2e --no-ceiling &   # or any running worker
    .venv/bin/python scripts/worker_threads.py [--pid PID] [--after 22] [--seconds 15]

Without --pid it waits for the first process started as `python -m streams.cli worker`
(the worker `bench e2e` spawns). --after: seconds to wait before measuring (into the
benchmark's throughput phase).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from streams.bench.soak import cpu_seconds


def find_worker() -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"streams.cli\x00worker" in cmdline:
            return int(entry.name)
    return None


def cpu_by_thread(pid: int) -> dict[int, float]:
    """Thread id -> CPU seconds (user + system) so far."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_seconds(pid, int(task.name))
        except OSError:  # the thread ended
            continue
    return out


def python_thread_names(pid: int) -> dict[int, str]:
    """Thread id -> Python thread name, from py-spy's dump (empty without py-spy)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.MULTILINE)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int)
    parser.add_argument("--after", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    pid = args.pid
    while pid is None:
        pid = find_worker()
        time.sleep(0.5)
    time.sleep(args.after)
    names = python_thread_names(pid)
    before, started = cpu_by_thread(pid), time.monotonic()
    time.sleep(args.seconds)
    after, elapsed = cpu_by_thread(pid), time.monotonic() - started
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    total = sum(used.values())
    print(f"worker {pid}: {total:.2f} s of CPU in {elapsed:.1f} s ({total / elapsed:.2f} cores)")
    for tid, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if seconds > 0:
            share = seconds / total if total else 0.0
            name = names.get(tid, "native")
            print(f"  {tid:>8} {seconds:7.2f} s {share:6.1%}  {name}")


if __name__ == "__main__":
    main()
