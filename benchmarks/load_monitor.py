"""CPU used by other processes while a benchmark measures: the noise on a shared machine.

Shared by the benchmark scripts (imported as a sibling module: scripts run from this folder).
"""

from __future__ import annotations

import os
import threading
import time


class OtherLoad:
    """CPU used by processes outside this process tree while measuring (a shared machine's noise).

    A background thread samples every process's CPU time; this process and its descendants
    (Ray, the Prefect server, SeaweedFS) count as ours, everything else as other.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.other_cpu_s = 0.0
        self.wall_s = 0.0
        self._last: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="other-load", daemon=True)

    def start(self) -> None:
        self._t0 = time.time()
        self._sample(first=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall_s = time.time() - self._t0

    def __enter__(self) -> OtherLoad:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        try:
            ours = {me.pid} | {c.pid for c in me.children(recursive=True)}
        except psutil.Error:
            return
        seen: dict[tuple[int, float], float] = {}
        for proc in psutil.process_iter(["cpu_times", "create_time"]):
            times, created = proc.info["cpu_times"], proc.info["create_time"]
            if times is None or created is None:
                continue
            key = (proc.pid, created)
            total = times.user + times.system
            seen[key] = total
            if first or proc.pid in ours:
                continue
            prev = self._last.get(key)
            if prev is not None:
                self.other_cpu_s += max(0.0, total - prev)
            elif created >= self._t0:  # started while we measure: all of its CPU counts
                self.other_cpu_s += total
        self._last = seen

    def summary(self) -> str:
        cores = os.cpu_count() or 1
        share = self.other_cpu_s / max(self.wall_s * cores, 1e-9) * 100
        line = (
            f"other processes on this machine used {self.other_cpu_s:.1f} CPU-s during the "
            f"{self.wall_s:.0f} s of measurements ({share:.0f} % of {cores} cores)"
        )
        if share > 5:
            line += ": figures are disturbed by other load, re-run on a quiet machine"
        return line
