"""What a report holds, by name only: the table's columns and their headers, the compact choice of them, and
the statement of method that every report carries; the formats it is written in, and their files, are
`formats.FORMATS`. Nothing here computes or imports anything heavy, so that `python -m bench report --help`
can name them at once."""

from __future__ import annotations

# column -> (header, header in LaTeX)
HEADERS = {
    "study": ("study", "study"),  # filled in a table of several studies only
    "label": ("variant", "variant"),
    "runs": ("seeds", "seeds"),
    "n": ("n", "$n$"),
    "exact": ("EM", "EM"),
    "exact_ci": ("EM 95% CI", r"EM 95\% CI"),
    "f1": ("F1", "F1"),
    "f1_ci": ("F1 95% CI", r"F1 95\% CI"),
    "exact_diff": ("ΔEM [95% CI]", r"$\Delta$EM [95\% CI]"),
    "f1_diff": ("ΔF1 [95% CI]", r"$\Delta$F1 [95\% CI]"),
    "train_examples_per_s": ("train ex/s", "train ex/s"),
    "wall_minutes": ("wall min", "wall min"),
    "peak_memory_mb": ("peak MiB", "peak MiB"),  # the records' peak_memory_mb is in mebibytes
    "parameters": ("parameters", "parameters"),
    "steps": ("steps", "steps"),
}
TABLE_COLUMNS = tuple(HEADERS)
FULL = tuple(column for column in HEADERS if column not in ("study", "n"))  # the seeds column says n and more
COMPACT = ("label", "n", "exact", "f1", "f1_diff")  # what a paper's table needs; --columns for more
CORRECTIONS = ("holm", "none")  # for multiple comparisons: Holm-Bonferroni, or none (bench.reporting.statistics)
METHOD = ("EM and F1: mean ± sd over the ok seeds, 95% CI from Student's t. ΔEM, ΔF1: the difference to the "
          "baseline with its 95% CI, paired by seed (t on the per-seed differences) where both have ok runs for "
          "at least two seeds, Welch's t otherwise; the pairs are given only where fewer than the row's seeds. "
          "* marks a difference resolved: its p-value below 0.05 after Holm's correction over the table's "
          "comparisons of that metric; an unmarked difference is not resolved, though its interval may exclude 0. "
          "Bold: better than every other row, each paired difference resolved after Holm's correction over those "
          "comparisons (cost columns only for runs timed alone or time-bounded). With --correction none neither "
          "is corrected. Each column shows one number of decimals, the finest its uncertainties need. Failed, "
          "out-of-memory and diverged runs are counted in the seeds column, never averaged.")
