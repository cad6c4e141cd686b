"""Older layouts of a saved config, brought to today's.

Layout 1 (checkpoint format version 1, and config.json files written by it) had one
flat model section holding every family's fields; layout 2 holds only the fields of
the run's family. No field was renamed, so the migration drops the ones the family
never read (they had no effect on the run).
"""

from __future__ import annotations

import copy
from typing import Any

from vaekit.config.families import family_fields
from vaekit.config.registry import MODEL

# Every key the flat model section of layout 1 had: it was written with all of them.
V1_MODEL_KEYS = frozenset(
    {"name", "latent_dim", "hidden_dim", "channels", "likelihood", "sigma", "groups"}
)
V1_DEFAULT_MODEL = "mlp"  # what layout 1 meant by a model section without a name


def is_v1_layout(raw: Any) -> bool:
    """True for a config written with the flat model section (all its keys, no others).

    No family of layout 2 has both `channels` and `groups`, so this cannot misread one.
    """
    model = raw.get("model") if isinstance(raw, dict) else None
    return isinstance(model, dict) and set(model) == V1_MODEL_KEYS


def v1_to_v2(raw: Any) -> Any:
    """A layout-1 config dict as layout 2: the model section keeps its family's fields.

    Anything it cannot read (not a mapping, an unknown model) is returned unchanged,
    for validation to report.
    """
    model = raw.get("model") if isinstance(raw, dict) else None
    name = model.get("name", V1_DEFAULT_MODEL) if isinstance(model, dict) else None
    if not isinstance(name, str) or name not in MODEL:
        return raw
    out = copy.deepcopy(raw)
    keep = set(family_fields(name))
    out["model"] = {key: value for key, value in model.items() if key in keep}
    return out
