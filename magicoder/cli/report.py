"""``magicoder-report``: compare the runs of a sweep, or diff two runs task by task.

magicoder-report outputs/ablate-mixture/sweep            # table (md, csv) + plots
magicoder-report diff RUN_A RUN_B --stage sft --benchmark humaneval
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from magicoder.report import diff_runs, results_protocol, write_report


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "diff":
        parser = argparse.ArgumentParser(prog="magicoder-report diff", description=__doc__)
        parser.add_argument("run_a", type=Path)
        parser.add_argument("run_b", type=Path)
        parser.add_argument("--stage", required=True, help="evaluated stage, e.g. sft")
        parser.add_argument("--benchmark", default="humaneval", choices=["humaneval", "mbpp"])
        ns = parser.parse_args(args[1:])
        flips = diff_runs(ns.run_a, ns.run_b, ns.stage, ns.benchmark)
        protocols = [results_protocol(r, ns.stage, ns.benchmark) for r in (ns.run_a, ns.run_b)]
        if protocols[0].id != protocols[1].id:
            print(
                f"not comparable: A was scored under {protocols[0].label}, "
                f"B under {protocols[1].label}"
            )
        print(f"fail → pass ({len(flips['fixed'])}): {' '.join(flips['fixed'])}")
        print(f"pass → fail ({len(flips['broken'])}): {' '.join(flips['broken'])}")
        return 0
    parser = argparse.ArgumentParser(prog="magicoder-report", description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a sweep (or run) directory")
    parser.add_argument(
        "--out", type=Path, default=None, help="output dir (default: <sweep>/report)"
    )
    ns = parser.parse_args(args)
    files = write_report(ns.sweep_dir, ns.out)
    print(files["markdown"].read_text(), end="")
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
