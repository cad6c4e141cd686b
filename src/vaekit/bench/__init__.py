"""`vaekit bench`: time the seed notebook, the matrix-product floor, vaekit and pythae
side by side, on the same machine, data and device, in one run.

Every measurement runs in a fresh child process (its own threads, allocator and
peak memory), one after the other, never two at once:

    seed     the notebook's pipeline (`seed_reference`: per-item PIL -> tensor, DataLoader)
    plain    a plain in-memory loop: batches cut from one tensor, logits loss, fused Adam
    graphed  the plain loop replayed from a CUDA graph (a GPU only): what capture would give
    floor    the model's matrix products alone, forward and backward, on random operands
    vaekit   `vaekit train` itself, once per precision; its epoch times are the ones it
             records in its run folder (the optimiser steps; test loss and checkpoint not)
    pythae   pythae's TrainingPipeline on the same model and device, in its own environment
    eval     the importance-weighted log-likelihood estimate (`vaekit.evaluation.estimate`)
    scaling  `vaekit train` as batch, hidden and latent sizes grow, beside their floor

Each training measurement runs E epochs; the first is warm-up and the rest are
timed (seconds per epoch = the median over the timed epochs of all repetitions;
spread = the lowest and highest repetition median). The child's peak resident
memory comes from the kernel (`wait4`).

Modules: `options` (what to measure), `processes` (child processes), `child` (a child's
entry point), `summary` (the statistic), one module per kind of measurement (`loops`,
`floor`, `train_timing`, `pythae_timing`, `estimate_timing`, `scaling`), `report`
(machine and ratios), `tables` (Markdown) and `runner` (the run, failures, saving).
Importing this package imports none of them.
"""
