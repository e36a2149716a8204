"""The one memory probe of library and harness: a device's peak during a run (the CUDA allocator's, or the
process's peak RSS on a CPU) and the process's peak RSS over its life. torch is imported only to ask a GPU,
so a command that never trains reads its memory without it."""

from __future__ import annotations

import resource
import sys


def reset_peak_memory(device) -> None:
    """Start a new peak of a torch device, so runs that share a process each report their own (on a CPU: on
    Linux only)."""
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the peak RSS (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_mb(device) -> float:
    """CUDA allocator peak on a GPU; on the CPU the peak RSS since `reset_peak_memory`
    (VmHWM on Linux; elsewhere the process's lifetime peak, `process_peak_rss_mb`)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration):
        return process_peak_rss_mb()


def process_peak_rss_mb() -> float:
    """The peak resident set size of this process over its whole life, in MiB (not reset by
    `reset_peak_memory`)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
