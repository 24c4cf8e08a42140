"""Speed and memory benchmark: our compute settings against a reference-style configuration.

The entry point; the benchmark itself is the package ``benchmarks/speedbench/`` (its docstring says
what is measured, and ``speedbench/styles.py`` what ours and reference-style mean).
benchmarks/README.md describes every option and the measured results.

Example (CPU, two methods)::

    python benchmarks/speed.py --methods coop upt --classes 100 --steps 3 --warmup 1 \\
        --out benchmarks/results/cpu.json
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # run as a script it is there already; imported by path it is not
    sys.path.insert(0, _HERE)

from speedbench.cli import main, parse_args  # noqa: E402
from speedbench.measure import measure, measure_components, measure_pair  # noqa: E402
from speedbench.report import markdown, pair_rows  # noqa: E402
from speedbench.spec import Spec, make_classnames  # noqa: E402

__all__ = ["Spec", "main", "make_classnames", "markdown", "measure", "measure_components", "measure_pair",
           "pair_rows", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
