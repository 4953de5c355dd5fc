"""Progress lines with rate and ETA for the host-side loops over jitted segments (never inside jit).

  bar = Progress(total=config.train.epochs, desc="ganplify", unit="epoch", start=resumed_epoch)
  for ...:                                   # one jitted segment of n epochs per iteration
    state, m = segment(state, ...)
    bar.update(n, d_loss=float(m["d_loss"]))  # [ganplify] 40/100 epoch | 12.3 epoch/s | ETA 0:00:05 | d_loss=0.69
  bar.close()

One line per update on stderr (flushed), so logs and CI keep the history; on a terminal the line is
redrawn in place with a carriage return instead. The rate counts only the work done since the reporter was
created (a resumed run does not claim the epochs it restored), and the ETA is remaining / rate.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, TextIO


def format_eta(seconds: float) -> str:
  """H:MM:SS (hours unbounded); '?' when unknown (nan/inf), 0:00:00 for negative values."""
  if seconds is None or not math.isfinite(seconds):
    return "?"
  s = int(round(max(seconds, 0.0)))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_rate(per_second: float, unit: str) -> str:
  """'12.3 epoch/s', or '4.0 s/epoch' when slower than one unit per second; '? epoch/s' when unknown."""
  if not math.isfinite(per_second) or per_second <= 0:
    return f"? {unit}/s"
  if per_second < 1:
    return f"{1 / per_second:.1f} s/{unit}"
  return f"{per_second:.3g} {unit}/s" if per_second < 100 else f"{per_second:,.0f} {unit}/s"


def _value(v) -> str:
  return f"{v:.4g}" if isinstance(v, float) else str(v)


class Progress:
  """Reports `done/total unit | rate | ETA | key=value ...` after every update (see the module docstring).

  total: units of the whole loop (e.g. epochs to reach); start: units already done before this process started (a resumed run)
  (resume); stream: default sys.stderr at creation; tty: redraw in place (default: stream.isatty()).
  """

  def __init__(self, total: int, desc: str, unit: str = "epoch", start: int = 0, stream: TextIO | None = None,
               tty: bool | None = None, clock: Callable[[], float] = time.monotonic):
    if total < 0 or not 0 <= start <= max(total, 0):
      raise ValueError(f"Progress({desc!r}): need 0 <= start <= total, got start={start}, total={total}")
    self.total, self.desc, self.unit, self.start, self.done = int(total), desc, unit, int(start), int(start)
    self.stream = sys.stderr if stream is None else stream
    self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
    self._clock, self._t0 = clock, clock()
    self._width = 0  # length of the last in-place line (TTY), to blank its tail

  @property
  def elapsed(self) -> float:
    return self._clock() - self._t0

  @property
  def rate(self) -> float:
    """Units per second since creation; nan before any unit was done."""
    dt, n = self.elapsed, self.done - self.start
    return n / dt if n > 0 and dt > 0 else math.nan

  @property
  def eta(self) -> float:
    """Seconds left at the current rate: 0 when complete, nan when unknown."""
    left = self.total - self.done
    return 0.0 if left <= 0 else (left / self.rate if self.rate > 0 else math.nan)

  def line(self, **postfix) -> str:
    parts = [f"[{self.desc}] {self.done}/{self.total} {self.unit}", format_rate(self.rate, self.unit),
             f"done in {format_eta(self.elapsed)}" if self.done >= self.total else f"ETA {format_eta(self.eta)}"]
    if postfix:
      parts.append(" ".join(f"{k}={_value(v)}" for k, v in postfix.items()))
    return " | ".join(parts)

  def update(self, n: int = 1, **postfix) -> str:
    """Advance by n units (capped at total), print the line, and return it."""
    self.done = min(self.done + int(n), self.total)
    text = self.line(**postfix)
    if self.tty:
      self.stream.write("\r" + text + " " * max(self._width - len(text), 0))
      self._width = len(text)
      if self.done >= self.total:
        self.stream.write("\n")
        self._width = 0
    else:
      self.stream.write(text + "\n")
    self.stream.flush()
    return text

  def close(self) -> None:
    """End an in-place line that did not reach the total (e.g. the loop was interrupted)."""
    if self.tty and self._width:
      self.stream.write("\n")
      self.stream.flush()
      self._width = 0

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
