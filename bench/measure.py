"""What every benchmark measures besides its own figures: peak resident memory per process."""

from __future__ import annotations

import threading

import psutil


class PeakRss:
    """Peak resident memory of named processes, sampled every 100 ms until `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
                except psutil.Error:
                    continue
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        """Stops sampling; the peaks in MiB, rounded to 0.1."""
        self._stop.set()
        self._thread.join()
        return {name: round(peak / 2**20, 1) for name, peak in self.peaks.items()}
