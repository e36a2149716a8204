"""QANet (Yu et al. 2018) and its training, the library under the bench/ harness. Read it in this order:

- config: every setting of data, model and training, with the paper's values, and the presets;
- data/: SQuAD and word vectors downloaded, tokenised, featurised and batched (data.prepare is the entry);
- layers, model: the network's building blocks, and QANet made of them;
- outcome: how a run ends (its statuses, the result, StopTraining, Diverged);
- device, memory, optimisation, divergence, metrics (the official SQuAD EM/F1) and evaluation (a split's
  predictions scored with it), checkpoint, hooks: what a run uses, one concern each;
- train: the Trainer, which ties them into one run;
- predict: answers to new questions with a checkpoint; files: atomic writes.
"""
