"""Copy the CPU table of the last `mlp-gpu bench --matrix cpu` run into README.md (between its markers),
so that the README quotes the bench's own numbers. `make bench` runs it after the bench.

    python3 benchmarks/readme_table.py [--results benchmarks/results/bench-cpu.json] [--readme README.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlp_gpu.benchmarks.report import with_cpu_table  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "benchmarks/results/bench-cpu.json"))
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    args = p.parse_args(argv)
    readme = Path(args.readme)
    readme.write_text(with_cpu_table(readme.read_text(), json.loads(Path(args.results).read_text())))
    print(f"{args.readme}: CPU table from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
