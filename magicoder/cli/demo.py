"""``magicoder-demo``: the Gradio playground, up to two models side by side (``conf/demo.yaml``)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="demo")
def app(cfg: DictConfig) -> None:
    """Compose, load the model(s), serve until interrupted; a bad setting or a missing model
    ends with its message, not a traceback."""
    from magicoder.chat.app import run_demo

    try:
        run_demo(cfg)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"magicoder-demo: {err}", file=sys.stderr)
        raise SystemExit(2) from None


main = console_entry(app)


if __name__ == "__main__":
    main()
