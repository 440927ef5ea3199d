"""One thin Hydra app per stage; each composes its config and calls ``run_<stage>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def console_entry(app: Callable[[], Any]) -> Callable[[], Any]:
    """The console script of a Hydra ``app``: register the configs, then compose and run.

    Registering when the script runs, not when its module is imported, keeps the module light
    for the scoring workers that re-import it (spawned processes import the parent's main
    module; the schemas import torch and transformers).
    """

    def main() -> Any:
        from magicoder.config import register_configs

        register_configs()
        return app()  # Hydra parses the command line

    return main
