"""Progress for every stage: a tqdm bar on a terminal, plain log lines in a log file.

Under SLURM, ``nohup`` or CI, output goes to files, where a progress bar draws nothing (rich)
or piles carriage returns into one endless line (tqdm). :class:`Progress` is a tqdm: on a
terminal it is the usual bar; otherwise its display is a ``logging`` INFO line every
``every_n`` items or ``every_seconds`` seconds, whichever comes first::

    generate humaneval: 48/164 (29%) 3.16 tasks/s, elapsed 00:15, ETA 00:36, accepted=40

plus one line when it starts and one when it closes. Lines go through ``logging``, so they
reach the console and Hydra's run log (``<run dir>/<task>.log``). Only rank zero reports.

Being a tqdm, it fits wherever one does (``update``, ``set_postfix``, iterating, ``with``,
vLLM's ``use_tqdm`` factory), and tqdm keeps doing the counting, timing, postfix formatting
and iteration. What tqdm cannot do is decide *when* to log: its ``miniters`` and
``mininterval`` must both be met before it redraws (here either one is enough), it has no
clock to inject for tests, and it writes to a stream, not to ``logging``. So plain mode lets
tqdm redraw on every update and :meth:`Progress.display` (the method tqdm documents for
subclasses to override) decides whether a line is due; the line is laid out here rather than
with ``tqdm.format_meter``, which pads rates to a fixed width and has no form without a bar
for an unknown total.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

__all__ = ["Progress", "is_terminal"]


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (tqdm's test: ``stream.isatty()``).

    A stream without ``isatty``, or a closed one, counts as no terminal.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except ValueError:  # closed
        return False


def _rank() -> int:
    """This process's rank as Lightning knows it (0 outside distributed runs).

    Lightning is imported here, not with this module: its import takes seconds, and every
    spawned scoring worker imports this module (through ``magicoder.evaluation.scoring``)
    without ever making a progress bar.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0)


class _Discard(io.TextIOBase):
    """Where a plain-mode tqdm writes: it draws nothing, its lines go to ``logging``."""

    def write(self, text: str) -> int:
        return len(text)


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _rate(rate: float | None, unit: str) -> str:
    if not rate:
        return f"? {unit}/s"
    return f"{rate:.2f} {unit}/s" if rate >= 1 else f"{rate:.3g} {unit}/s"  # 0.0123, not 0.01


class Progress(tqdm):
    """A tqdm bar on a terminal; periodic ``logging`` lines when its stream is not one.

    Use it as tqdm::

        with Progress(total=len(prompts), desc="generate humaneval", unit="tasks") as progress:
            for batch in batches:
                ...
                progress.update(len(batch), tokens_per_sec=1234)

        for row in Progress(rows, desc="curate", unit="rows"):
            ...

    In plain mode the first line is logged when it is created, a progress line whenever
    ``n`` reaches a multiple of ``every_n`` or ``every_seconds`` have passed since the last
    line (a line needs ``n`` to have moved), and a last line ("done" or "stopped at") when it
    closes. Rate and ETA count only what this instance did (``n - initial``), so a resumed
    run's ETA is not skewed by the work done before it.

    Args:
        iterable: What to iterate over, as for tqdm (None: call ``update`` instead).
        desc: What is being done; starts each line ("generate humaneval", "train").
        total: How many items in all (None: ``len(iterable)`` if it has one, else unknown).
        unit: Plural noun for the items ("tasks", "steps", "rows").
        every_n: Plain mode: log when ``n`` reaches a multiple of this (None: by time only).
        every_seconds: Plain mode: log when this much time passed since the last line (None:
            by count only).
        plain: True logs lines, False draws a bar, None decides like tqdm: a bar when its
            stream (``file``, default stderr) is a terminal.
        disable: Show nothing at all. Ranks other than zero are always disabled.
        logger: Logger of the lines (default ``magicoder.progress``); pass the caller's so
            lines carry its name.
        clock: Returns the time in seconds (default: tqdm's, ``time.time``); for tests.
        **kwargs: Passed to ``tqdm`` (``initial``, ``postfix``, ``file``, ...). In plain mode
            the redraw settings (``file``, ``mininterval``, ``miniters``, ``smoothing``,
            ``delay``) are fixed, and the rate is the average since the start.

    Raises:
        ValueError: If ``every_n`` < 1 or ``every_seconds`` <= 0.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        desc: str | None = None,
        total: float | None = None,
        *,
        unit: str = "items",
        every_n: int | None = None,
        every_seconds: float | None = 30.0,
        plain: bool | None = None,
        disable: bool = False,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] | None = None,
        **kwargs: Any,
    ) -> None:
        # _quiet holds back the redraws tqdm makes from its __init__ and while closing (none is
        # a line); all three are set first because tqdm's __del__ calls close() even when the
        # checks below refuse the arguments.
        self.plain, self.disable, self._quiet = False, True, True
        if every_n is not None and (isinstance(every_n, bool) or every_n < 1):
            raise ValueError(f"every_n={every_n!r} must be an integer >= 1 or None")
        if every_seconds is not None and every_seconds <= 0:
            raise ValueError(f"every_seconds={every_seconds!r} must be > 0 or None")
        self.every_n = every_n
        self.every_seconds = every_seconds
        self.logger = logger or log
        if plain is None:
            plain = not is_terminal(kwargs.get("file") or sys.stderr)
        self.plain = plain
        disable = bool(disable) or _rank() != 0
        if plain and not disable:
            kwargs.update(file=_Discard(), mininterval=0, miniters=1, smoothing=0, delay=0)
        super().__init__(iterable, desc, total, unit=unit, disable=disable, **kwargs)
        if self.disable:
            return
        if clock is not None:
            self._time = clock
            self.start_t = self.last_print_t = clock()
        self._logged_n = self.n
        self._logged_t = self.start_t
        if self.plain:
            self._quiet = False
            self.logger.info("%s", self._start_line())

    def update(self, n: float = 1, **postfix: Any) -> bool | None:
        """Advance by ``n``; ``postfix`` fields (if any) replace the shown ones first."""
        if postfix and not self.disable:
            self.set_postfix(postfix, refresh=False)
        return super().update(n)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        """Draw the bar, or in plain mode log a progress line if one is due."""
        if not self.plain:
            return super().display(msg, pos)
        if not self._quiet:
            now = self._time()
            if self._due(now):
                self._logged_n, self._logged_t = self.n, now
                self.logger.info("%s", self._progress_line())
        return True

    def close(self) -> None:
        """Log the last line (plain mode) and close, as tqdm does."""
        if self.plain and not self.disable and not self._quiet:
            self._quiet = True
            self.logger.info("%s", self._end_line())
        super().close()

    def _due(self, now: float) -> bool:
        if self.n == self._logged_n:
            return False
        every_n, every_seconds = self.every_n, self.every_seconds
        by_count = every_n is not None and self.n // every_n > self._logged_n // every_n
        by_time = every_seconds is not None and now - self._logged_t >= every_seconds
        return by_count or by_time

    def _prefix(self) -> str:
        return f"{self.desc}: " if self.desc else ""

    def _suffix(self) -> str:
        return f", {self.postfix}" if self.postfix else ""

    def _done(self) -> str:
        total = f"/{_count(self.total)}" if self.total else ""
        return f"{_count(self.n)}{total}"

    def _average_rate(self, elapsed: float) -> float | None:
        done = self.n - self.initial
        return done / elapsed if elapsed > 0 and done > 0 else None

    def _start_line(self) -> str:
        return f"{self._prefix()}start, {self._done()} {self.unit}{self._suffix()}"

    def _progress_line(self) -> str:
        elapsed = self._time() - self.start_t
        rate = self._average_rate(elapsed)
        parts = [self._done()]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts[0] += f" {_rate(rate, self.unit)}"
        parts.append(f"elapsed {self.format_interval(elapsed)}")
        if self.total and rate:
            parts.append(f"ETA {self.format_interval(max(self.total - self.n, 0) / rate)}")
        return self._prefix() + ", ".join(parts) + self._suffix()

    def _end_line(self) -> str:
        elapsed = self._time() - self.start_t
        finished = not self.total or self.n >= self.total
        state = "done," if finished else "stopped at"
        rate = _rate(self._average_rate(elapsed), self.unit)
        return (
            f"{self._prefix()}{state} {self._done()} {self.unit} in "
            f"{self.format_interval(elapsed)} ({rate}){self._suffix()}"
        )
