"""Scoring trained models: the per-epoch test loss and the full evaluation.

Submodules: `result` (the typed result every reader uses; no torch), `estimate`
(the -ELBO, importance-weighted log p(x), active units, FID).
"""
