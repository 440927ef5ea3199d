"""The chat and demo apps' generation settings; importing this module loads no torch, so
:mod:`magicoder.schemas` derives the ``generation`` schema of ``conf/chat.yaml`` and
``conf/demo.yaml`` from :class:`ChatSettings` itself."""

from __future__ import annotations

from dataclasses import dataclass

from magicoder.config import check_device


@dataclass
class ChatSettings:
    """How the chat and demo apps generate (the ``generation`` node of ``conf/chat.yaml`` and
    ``conf/demo.yaml``).

    Attributes:
        max_new_tokens: Most tokens generated per response (fewer when the prompt leaves less
            room in the model's context).
        temperature: 0 decodes greedily, as the paper evaluates; above 0 samples.
        top_p: Nucleus sampling mass (only when sampling).
        stop: Stop once the response contains this string (None: at EOS or the length);
            evaluation uses a code fence because its response prefix opens one.
        response_prefix: Text the response starts with (evaluation's MBPP+ prefix is
            "```python"); shown as part of the response.
        device: Where to generate: "auto" (the first GPU, else the CPU), "cpu", "cuda:1", ...
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: str | None = None
    response_prefix: str = ""
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or self.max_new_tokens < 1:
            raise ValueError(
                f"generation.max_new_tokens={self.max_new_tokens!r} must be an integer >= 1."
            )
        if self.temperature < 0:
            raise ValueError(
                f"generation.temperature={self.temperature!r} must be >= 0 (0: greedy)."
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"generation.top_p={self.top_p!r} must be in (0, 1].")
        if self.stop == "":
            raise ValueError("generation.stop='' would stop at once; use null for no stop string.")
        check_device("generation.device", self.device)
