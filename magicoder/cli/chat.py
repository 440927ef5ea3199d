"""``magicoder-chat``: talk to a model in the terminal (``conf/chat.yaml``)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_configs


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="chat")
def app(cfg: DictConfig) -> None:
    """Compose, load the model, answer; bad input ends with its message, not a traceback."""
    from magicoder.chat.app import run_chat

    try:
        run_chat(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"magicoder-chat: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """The console script: register the configs, then compose and run. Registering here, not
    on import, keeps this module light for the scoring workers that re-import it (spawned
    processes import the parent's main module; the schemas import torch and transformers)."""
    register_configs()
    app()  # Hydra parses the command line


if __name__ == "__main__":
    main()
