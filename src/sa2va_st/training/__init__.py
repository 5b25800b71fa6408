"""Training (stage `train`).

One concept per module:

- `sampler`  task-grouped, distributed-aware batch sampler: every global batch holds one
             task, per-dataset repeats, deterministic order from (seed, epoch), mid-epoch resume

Importing this package is cheap; import the submodules you need (they import torch).
"""
