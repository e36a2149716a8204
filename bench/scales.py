"""The scales a study or search runs at: one table.

A scale replaces the size, the data and the budget of every run of a file, as its entry says, and keeps each
variant's own settings: `full` is the file as written (the paper's budget), `gpu` the study's own model on real
SQuAD v1.1 with GloVe 6B 50d and a budget that puts a 21-run study in an hour on one GPU, `smoke` the synthetic
data, the `tiny` model and 500 steps (about two minutes a run on 2 cores), `cpu` real SQuAD v1.1 with GloVe 6B
50d, a reduced model and a budget of minutes a run on a 2-core CPU. A new scale is one entry in SCALES.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.environment import SHARED_SQUAD_V11
from qanet.config import PRESETS, SMALL_MODEL, default_cache_dir
from qanet.data.vectors import KUMO


@dataclass(frozen=True)
class Scale:
    summary: str  # one line for --help
    size: dict[str, Any] = field(default_factory=dict)  # model, batch, length limits, warm-up
    data: dict[str, Any] = field(default_factory=dict)  # vectors, the dev questions scored during training
    budget: dict[str, Any] = field(default_factory=dict)  # steps, evaluation and checkpoint intervals
    squad_v11: bool = False  # trains on SQuAD v1.1 (the fetched files, else the copies in ../shared/data)

    def settings(self) -> dict[str, Any]:
        """What the scale sets in every run of a file (nothing at full scale)."""
        return {**self.size, **self.data, **(squad_v11_files() if self.squad_v11 else {}), **self.budget}


# The budgets end with train.minutes = None: a scale's runs are bounded by steps, whatever the file says.
_REAL_DATA = {"data.vectors": KUMO, "train.eval_questions": 2000}  # the whole dev set is scored at the end
SCALES: dict[str, Scale] = {
    "full": Scale("the study as written, the paper's budget"),
    # The study's model as written (its axes included) on SQuAD v1.1 with GloVe 6B 50d (the paper's GloVe 840B
    # 300d cannot be had on the GPU machines), from the files or a pack (--set data.pack=DIR). Why 2,500 steps:
    # one run at the paper's size alone on an H200 trained 21.3 steps/s on the path compile "auto" takes (CUDA
    # graphs, one shape), compiled in 22 s, scored the whole dev set in about 4 s and spent about 10 s starting
    # (results/reference/gpu-run-nvidia-h200.json): a run is 2,500 / 21.3 + 40 = 157 s, 21 runs one after
    # another 55 minutes. An H100's rate and several runs sharing a card are not measured yet (docs/gpu.md).
    "gpu": Scale("the study's own model on SQuAD v1.1 + GloVe 6B 50d, 2,500 steps a run (a 21-run study in about "
                 "55 minutes at one H200's measured rate)", data=_REAL_DATA, squad_v11=True,
                 budget={"train.steps": 2500, "train.eval_every": 500, "train.checkpoint_every": 500,
                         "train.minutes": None}),
    # the tiny preset's model, batch, warm-up, EMA and context (not its budget) on the synthetic data
    "smoke": Scale("synthetic data, the tiny model, 500 steps, about two minutes a run on 2 cores",
                   size={key: value for key, value in PRESETS["tiny"].items()
                         if key not in ("train.steps", "train.eval_every", "train.checkpoint_every")},
                   data={"data.train": "synthetic", "data.dev": "synthetic", "data.vectors": "random"},
                   budget={"train.steps": 500, "train.eval_every": 250, "train.checkpoint_every": 250,
                           "train.minutes": None}),
    # The small model alone (in 7 minutes on 2 cores it reached dev F1 24; the seed article's hidden 100 / 4
    # blocks, at 3.5x the step time, reached 18), context 150, 3,000 steps of batch 16: about 9 minutes a run.
    "cpu": Scale("real SQuAD v1.1 + GloVe 6B 50d, a reduced model, about 9 minutes a run on 2 cores",
                 size={**SMALL_MODEL, "data.context_len": 150, "train.batch_size": 16, "train.warmup_steps": 500},
                 data=_REAL_DATA, squad_v11=True,
                 budget={"train.steps": 3000, "train.eval_every": 500, "train.checkpoint_every": 500,
                         "train.minutes": None}),
}


def scales_help() -> str:
    """The --scale help of the commands that take one."""
    return "; ".join(f"{name}: {scale.summary}" for name, scale in SCALES.items()) + (
        ". Any scale reads its data from a pack with --set data.pack=DIR")


def squad_v11_files() -> dict[str, str]:
    """SQuAD v1.1 for the gpu and cpu scales: the official files if `bench data fetch squad-v1.1` got them,
    else the copies in ../shared/data; with neither, preparation says how to fetch them (a run from a pack
    reads none of them)."""
    from qanet.data.prepare import downloaded_path

    fetched = {split: downloaded_path("squad-v1.1", split, default_cache_dir()) for split in ("train", "dev")}
    if all(path.is_file() for path in fetched.values()):
        return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}
    if all(path.is_file() for path in SHARED_SQUAD_V11.values()):
        return {f"data.{split}": str(path) for split, path in SHARED_SQUAD_V11.items()}
    return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}
