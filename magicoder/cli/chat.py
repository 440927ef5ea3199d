"""``magicoder-chat``: talk to a model in the terminal (``conf/chat.yaml``)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="chat")
def app(cfg: DictConfig) -> None:
    """Compose, load the model, answer; bad input ends with its message, not a traceback."""
    from magicoder.chat.app import run_chat

    try:
        run_chat(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"magicoder-chat: {err}", file=sys.stderr)
        raise SystemExit(2) from None


main = console_entry(app)


if __name__ == "__main__":
    main()
