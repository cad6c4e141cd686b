"""Training: `state` (a run in memory), `step` (one optimiser step), `loop` (epochs,
fit), `resume` (what a stopped run may change)."""
