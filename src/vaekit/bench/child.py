"""The entry point of a measurement's own process: `python -m vaekit.bench.child NAME SPEC`.

SPEC is JSON; the child sets torch's thread count from it, runs the named
measurement and prints its JSON record as the last line, which
`vaekit.bench.processes.run_process` reads back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from vaekit.bench.estimate_timing import child_eval
from vaekit.bench.floor import child_floor
from vaekit.bench.loops import child_graphed, child_plain, child_seed
from vaekit.bench.step_profile import child_profile

CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "seed": child_seed,
    "plain": child_plain,
    "graphed": child_graphed,
    "floor": child_floor,
    "eval": child_eval,
    "profile": child_profile,
}


def main(name: str, spec_json: str) -> None:
    """Run one measurement and print its record, with the threads it ran on."""
    import torch

    spec = json.loads(spec_json)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    record = CHILDREN[name](spec)
    record["threads"] = torch.get_num_threads()
    sys.stdout.write("\n" + json.dumps(record) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m vaekit.bench.child NAME SPEC_JSON")
    main(sys.argv[1], sys.argv[2])
