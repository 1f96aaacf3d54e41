"""The hostile-input sweep in full, with counts: every option of every command (read from the
parsers) with every hostile value of ``tests/hostile.py``, each case stopped where the command
would start working, and classed clean / unclear / accepted / traceback / hang / changed.

    python tools/sweep_cli.py              # the table, per command and in total
    python tools/sweep_cli.py --show unclear traceback

The test suite asserts the same (``tests/test_hostile_inputs.py``, its ``slow`` test the whole
sweep); this prints the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

import hostile  # noqa: E402

OUTCOMES = ("clean", "unclear", "accepted", "traceback", "hang", "changed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--show", nargs="*", default=[], choices=OUTCOMES, help="print the cases of these outcomes"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hostile.fixture(root)
        t0 = time.perf_counter()
        result = hostile.sweep(root)
        seconds = time.perf_counter() - t0
    per: dict[str, Counter] = {}
    for c in result.cases:
        per.setdefault(c.command, Counter())[c.outcome] += 1
    width = max(len(c) for c in per) + 2
    print(f"{'command':<{width}}{'options':>8}" + "".join(f"{o:>11}" for o in OUTCOMES))
    for command, counts in per.items():
        n_opts = len({c.option for c in result.cases if c.command == command})
        print(f"{command:<{width}}{n_opts:>8}" + "".join(f"{counts[o]:>11}" for o in OUTCOMES))
    total = result.counts()
    n_opts = len({(c.command, c.option) for c in result.cases})
    print(f"{'total':<{width}}{n_opts:>8}" + "".join(f"{total[o]:>11}" for o in OUTCOMES))
    print(
        f"{len(result.cases)} cases: {len(per)} commands, {n_opts} options, {len(hostile.VALUES)} values; "
        f"{seconds:.0f} s"
    )
    for c in result.cases:
        if c.outcome in args.show:
            print(f"{c.outcome}: imitation {' '.join(c.argv)}\n    {c.stderr.strip()[-300:]}")
    return 0 if not (total["traceback"] or total["hang"] or total["changed"] or total["unclear"]) else 1


if __name__ == "__main__":
    sys.exit(main())
