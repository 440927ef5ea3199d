"""Which model the chat and demo apps load: a model config, a stage of a training run, or a
``save_pretrained`` directory, resolved to a :class:`~magicoder.models.ModelSpec`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from magicoder.config import config_dir
from magicoder.evaluation.harness import resolve_device
from magicoder.models import HubModel, ModelSpec

logger = logging.getLogger(__name__)


def run_stages(run_dir: Path) -> list[str]:
    """The stages a training run saved under ``model/``, in training order when the run's
    ``.hydra/config.yaml`` says it (else by name)."""
    saved = {p.name for p in (run_dir / "model").iterdir() if (p / "config.json").is_file()}
    config = run_dir / ".hydra" / "config.yaml"
    order: list[str] = []
    if config.is_file():
        stages = OmegaConf.select(OmegaConf.load(config), "data.stages", default=None)
        order = [str(name) for name in stages] if isinstance(stages, DictConfig) else []
    return [s for s in order if s in saved] + sorted(saved - set(order))


def stage_dir(run: str, stage: str | None, key: str = "run") -> Path:
    """The ``model/<stage>/`` directory of training run ``run`` (its last stage when None).

    Args:
        run: A run directory (``outputs/train/<timestamp>``).
        stage: A stage it trained, e.g. "sft"; None picks the last one saved.
        key: The config key that named the run, for messages ("run" or "compare").

    Raises:
        FileNotFoundError: When ``run`` is no run directory, saved no model, or not ``stage``.
    """
    run_dir = Path(run).expanduser()
    stage_key = "stage" if key == "run" else f"{key}_stage"
    if not (run_dir / "model").is_dir():
        raise FileNotFoundError(
            f"{key}={run!r} is not a training run directory with a model/ folder; pass a "
            "directory such as outputs/train/<timestamp> whose stages finished training."
        )
    stages = run_stages(run_dir)
    if not stages:
        raise FileNotFoundError(
            f"{key}={run!r} has no saved stage under model/ (no model/<stage>/config.json); "
            "train a stage first, or pick another run."
        )
    if stage is None:
        return run_dir / "model" / stages[-1]
    if stage not in stages:
        raise FileNotFoundError(
            f"{stage_key}={stage!r}: run {run!r} saved no such stage; its stages are "
            f"{stages}. Pass one of them, or leave {stage_key} unset for the last."
        )
    return run_dir / "model" / stage


def _run_dtype(model_dir: Path) -> str:
    """The dtype the run trained in (its model config's), float32 when it does not say."""
    config = model_dir.parents[1] / ".hydra" / "config.yaml"
    if config.is_file():
        dtype = OmegaConf.select(OmegaConf.load(config), "model.dtype", default=None)
        if isinstance(dtype, str):
            return dtype
    return "float32"


def directory_spec(model_dir: Path, name: str) -> HubModel:
    """A spec that loads a ``save_pretrained`` directory (a run's stage or any model dir)."""
    return HubModel(name=name, name_or_path=str(model_dir), dtype=_run_dtype(model_dir))


def model_spec(cfg: DictConfig) -> ModelSpec:
    """The first model of a chat/demo config: ``run`` + ``stage`` when set, else ``model``.

    Raises:
        FileNotFoundError: As :func:`stage_dir` does, or for a missing model directory.
    """
    if cfg.get("run"):
        directory = stage_dir(str(cfg.run), cfg.get("stage"))
        spec: ModelSpec = directory_spec(directory, f"{Path(cfg.run).name}/{directory.name}")
    else:
        if cfg.get("stage"):
            raise ValueError(
                f"stage={cfg.stage!r} needs run=<training run directory> to pick the stage from; "
                "set run, or drop stage to use model."
            )
        spec = instantiate(cfg.model)
    spec.check()
    return spec


def compare_spec(cfg: DictConfig) -> ModelSpec | None:
    """The second model of a demo config (``compare``), or None when there is none.

    ``compare`` names a training run directory (its ``compare_stage``, else its last stage),
    a ``save_pretrained`` directory, or a model config in ``conf/model/``.

    Raises:
        ValueError: When ``compare`` is none of these.
        FileNotFoundError: As :func:`stage_dir` does.
    """
    value = cfg.get("compare")
    if not value:
        if cfg.get("compare_stage"):
            raise ValueError(
                f"compare_stage={cfg.compare_stage!r} needs compare=<training run directory>."
            )
        return None
    path = Path(str(value)).expanduser()
    if (path / "model").is_dir():
        directory = stage_dir(str(value), cfg.get("compare_stage"), key="compare")
        return directory_spec(directory, f"{path.name}/{directory.name}")
    if (path / "config.json").is_file():
        return directory_spec(path, path.name)
    names = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
    if str(value) not in names:
        raise ValueError(
            f"compare={value!r} is not a training run directory (with model/<stage>/), a model "
            f"directory (save_pretrained), or a model config; model configs: {names}."
        )
    spec: ModelSpec = instantiate(model_config(str(value), cfg.paths))
    spec.check()
    return spec


def model_config(name: str, paths: DictConfig) -> DictConfig:
    """The ``model`` node of ``conf/model/<name>.yaml``, composed as ``model=<name>`` would be,
    with its ``${paths.*}`` taken from ``paths`` (the running app's)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"model={name}"]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app
        composed = compose("chat", overrides=overrides)
    else:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            composed = compose("chat", overrides=overrides)
    with open_dict(composed):
        composed.paths = OmegaConf.create({key: paths[key] for key in paths if key != "output_dir"})
    model = composed.model
    OmegaConf.resolve(model)
    return model


def load_model(spec: ModelSpec, device: str) -> tuple[Any, Any]:
    """Load ``spec`` onto ``device`` (``resolve_device``'s names, as evaluation), in eval mode."""
    model, tokenizer = spec.load()
    model = model.to(resolve_device(device))  # type: ignore[arg-type]
    model.eval()
    logger.info("Loaded %s on %s", spec.name, model.device)
    return model, tokenizer
