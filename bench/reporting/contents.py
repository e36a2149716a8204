"""What a report holds, by name only: the table's columns and their headers, the compact choice of them, the
files a table is written to, and the statement of method that every report carries. Nothing here computes or
imports anything heavy, so that `python -m bench report --help` can name them at once."""

from __future__ import annotations

# column -> (header, header in LaTeX)
HEADERS = {
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
    "peak_memory_mb": ("peak MB", "peak MB"),
    "parameters": ("parameters", "parameters"),
    "steps": ("steps", "steps"),
}
TABLE_COLUMNS = tuple(HEADERS)
FULL = tuple(column for column in HEADERS if column != "n")
COMPACT = ("label", "n", "exact", "f1", "f1_diff")  # what a paper's table needs; --columns for more
FORMATS = ("md", "latex", "csv", "html")
METHOD = ("EM and F1: mean ± sd over the ok seeds, 95% CI from Student's t. ΔEM, ΔF1: the difference to the "
          "baseline with its 95% CI, paired by seed (t on the per-seed differences) over the n seeds both have ok "
          "runs for, where there are at least two, Welch's t otherwise. Bold: better than every other row, with "
          "every paired 95% interval excluding 0 (cost columns only for runs timed alone or time-bounded). "
          "Decimals follow the uncertainty: the sd beside a mean, the half-width of an interval. Failed, "
          "out-of-memory and diverged runs are counted in the seeds column, never averaged.")
