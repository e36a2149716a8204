"""Whether a study's runs can be compared on cost: their clocks (each run timed alone, or bounded by minutes),
their memory (each run's own peak) and, for time-bounded runs, the hardware that spent their minutes. The
tables bold, the plots draw and the reports warn by these."""

from __future__ import annotations

from qanet.outcome import FINISHED


def wall_clock_comparable(runs) -> bool:
    """Whether the ok runs' times measure the variants: each run timed alone (its process trained no other run
    meanwhile) or bounded by a minutes budget. Runs trained side by side share the machine's cores and memory
    bandwidth, so their clocks measure the sharing as much as the variant: reports bold no cost column and plot
    no time panel for them."""
    ok = runs[runs["status"] == "ok"]
    return bool((ok["timed_alone"].fillna(False).astype(bool) | ok["time_bounded"].fillna(False).astype(bool)).all())


def memory_per_run(runs) -> bool:
    """Whether the ok runs' peak memory is each run's own: the CUDA allocator's peak, reset for every run. On a
    CPU it is the process's peak RSS so far, so a run that follows others in one process reports the largest
    of them all: no comparison between variants."""
    return bool((runs.loc[runs["status"] == "ok", "device_kind"] == "cuda").all())


def mixed_hardware(frame) -> str:
    """Time-bounded runs (train.minutes) got as far as their hardware's speed allowed, so comparing them across
    hardware models (or CPU thread counts) compares the machines as much as the variants: what each scale's
    finished time-bounded runs were made on, where that is more than one thing; '' otherwise."""
    problems = []
    bounded = frame[frame["time_bounded_on"].notna() & frame["status"].isin(FINISHED)]
    for scale, group in bounded.groupby("scale"):
        made_on = group["time_bounded_on"].value_counts()
        if len(made_on) > 1:
            problems.append(f"{scale}: " + ", ".join(f"{count} on {where}" for where, count in made_on.items()))
    if not problems:
        return ""
    return (f"time-bounded runs were made on different hardware ({'; '.join(problems)}): their step counts differ "
            f"with the hardware's speed")
