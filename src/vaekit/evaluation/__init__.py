"""Scoring trained models: the per-epoch test loss, the full evaluation, per example.

Submodules: `result` (the typed result every reader uses; no torch), `estimate`
(the -ELBO, importance-weighted log p(x), active units, FID), `encoded` (every
example's posterior, for `vaekit encode`) and `scores` (per-example -log p(x),
-ELBO and reconstruction error, for `vaekit score`).
"""
