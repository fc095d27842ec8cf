"""A small progress display for long work (fits, scoring passes).

On a terminal it redraws one line; elsewhere (logs, CI) it writes a line at
most every few seconds, so logs stay short.
"""

from __future__ import annotations

import sys
import time

_ENABLED = True


def set_enabled(enabled: bool) -> None:
  global _ENABLED
  _ENABLED = enabled


class Progress:
  """``Progress('round 2 fit', total=100)``, then ``update(i, text, seconds)``."""

  def __init__(self, description: str, total: int, stream=None, every_seconds: float = 10.0):
    self.description = description
    self.total = total
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.every_seconds = every_seconds
    self._last = -1e9
    self._line = ''

  def update(self, done: int, text: str = '', seconds: float | None = None) -> None:
    if not _ENABLED:
      return
    width = 20
    filled = int(width * done / max(1, self.total))
    bar = '#' * filled + '.' * (width - filled)
    timing = f' {seconds:.1f}s' if seconds is not None else ''
    self._line = f'{self.description} [{bar}] {done}/{self.total} {text}{timing}'
    now = time.monotonic()
    if self.tty:
      self.stream.write('\r' + self._line + '\x1b[K')
      self.stream.flush()
    elif now - self._last >= self.every_seconds or done == self.total:
      self.stream.write(self._line + '\n')
      self.stream.flush()
      self._last = now

  def close(self) -> None:
    if _ENABLED and self.tty and self._line:
      self.stream.write('\n')
      self.stream.flush()
