"""Shared by every benchmark: the machine description and appending a section to BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}{gpu}"
    )


def append_section(title: str, body: str) -> None:
    """Append `## title` with machine, date and command, then `body` (markdown) to BENCHMARKS.md."""
    cmd = "python " + " ".join([Path(sys.argv[0]).resolve().relative_to(ROOT).as_posix(), *sys.argv[1:]])
    header = "" if RESULTS.exists() else "# Benchmarks\n\nEach section was written by the command it names.\n"
    date = datetime.date.today().isoformat()
    with open(RESULTS, "a") as f:
        f.write(f"{header}\n## {title}\n\n- date: {date}\n- machine: {machine()}\n- command: `{cmd}`\n\n")
        f.write(body.rstrip() + "\n")
    print(f"appended '{title}' to {RESULTS}")


class BandwidthProbe:
    """Memory read bandwidth sampled between the timed runs of a benchmark, so that a bound and the
    timings it judges share the machine's state (on a shared VM the bandwidth swings 2-5x within
    minutes: 15 to 80 GB/s measured here on different days, 49 and 78 GB/s within one run). `sample()`
    times one streaming sum over `mib` MiB of fp32 (the pages are faulted in at construction) ->
    bytes/s; `best` is the highest sample so far, the machine's capability as far as seen."""

    def __init__(self, device: torch.device | str = "cpu", mib: int = 512) -> None:
        self.device = torch.device(device)
        self.x = torch.ones(mib * 2**20 // 4, device=self.device)
        self.x.sum().item()
        self.best = 0.0

    def sample(self) -> float:
        import time

        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        self.x.sum().item()
        rate = self.x.numel() * 4 / (time.perf_counter() - t0)
        self.best = max(self.best, rate)
        return rate


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of `fn()` over `repeats` calls after one warm-up call."""
    import statistics
    import time

    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n x n by n x n matmul at the current thread count (CPU)."""
    import time

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def report(title: str, body: str, write: bool) -> None:
    """Print a benchmark's markdown; with `write`, also append it to BENCHMARKS.md under `title`."""
    print(body)
    if write:
        append_section(title, body)


def parser(doc: str, repeats: int = 3):
    """The options every benchmark takes: --threads, --repeats, --write (add its own to the result)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    ap.add_argument("--repeats", type=int, default=repeats, help="timed repeats; the median is reported")
    ap.add_argument("--write", action="store_true", help="append the result to BENCHMARKS.md")
    return ap


def start(args) -> float:
    """Apply --threads, print the machine; -> the 1-minute load average (the machine may be shared)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    return os.getloadavg()[0]
