"""Reports of what the benchmark measured, by role: `statistics` (means, intervals, differences and the
decimals they allow), `tables` (a study's records -> one row per variant, and its tables in Markdown, LaTeX,
CSV and HTML), `plots` (the figures), `document` (report.md and report.html, and the combined table of
several studies), `comparability` (whether runs' clocks and memory compare) and `search` (an Optuna search's
report); `contents` names what a report holds and `formats` the formats it is written in (one entry each: its
files, its line of help, its writers), both without importing anything heavy, for the command line's help.
Every report is a pure function of the records and the study file: the same records give the same bytes."""
