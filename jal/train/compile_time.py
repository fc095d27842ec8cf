"""XLA compile time, told apart from the steady state, as JAX itself reports it.

A jitted function's first call (per shape) pays for three phases before it
runs: tracing to a jaxpr, lowering the jaxpr to an MLIR module, and the
backend compile (XLA's, or a read of the persistent compilation cache).
JAX reports each as a monitoring event with its wall-clock time span
(``jax.monitoring``, events `EVENTS`). `measure` collects the spans while it
is open and sums their union, so a span nested in another (a jit traced
inside the trace of an outer one, an eager op run while tracing) counts
once. A call that compiles nothing reports exactly 0: no event, no span.

The records' ``train_compile_seconds``, ``query_compile_seconds`` and
``compile_seconds`` (`jal.experiment.finish_round`) come from here.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import jax

# The phases of a compile (jax._src.dispatch's JAXPR_TRACE_EVENT,
# JAXPR_TO_MLIR_MODULE_EVENT and BACKEND_COMPILE_EVENT; JAX 0.4.3x to 0.10).
EVENTS = frozenset({'/jax/core/compile/jaxpr_trace_duration',
                    '/jax/core/compile/jaxpr_to_mlir_module_duration',
                    '/jax/core/compile/backend_compile_duration'})


class CompileTime:
  """The compile spans seen while a `measure` was open."""

  def __init__(self):
    self._spans: list[tuple[float, float]] = []

  def add(self, start: float, end: float) -> None:
    self._spans.append((start, end))

  @property
  def seconds(self) -> float:
    """Seconds of wall-clock time spent compiling: the length of the union of the spans."""
    total, reach = 0.0, float('-inf')
    for start, end in sorted(self._spans):
      if end > reach:
        total += end - max(start, reach)
        reach = end
    return total


_lock = threading.Lock()
_open: list[CompileTime] = []
_registered = False


def _on_span(event: str, start: float, end: float, **kwargs) -> None:
  del kwargs
  if event in EVENTS:
    with _lock:
      for clock in _open:
        clock.add(start, end)


@contextlib.contextmanager
def measure() -> Iterator[CompileTime]:
  """Collects the compile time of the code it wraps (in any thread of the process).

  Measurements may nest or overlap: each sees every compile while it is open.

  Yields:
    A `CompileTime`; read ``.seconds`` when the block is done.
  """
  global _registered
  clock = CompileTime()
  with _lock:
    if not _registered:  # once per process: listeners cannot be told apart later
      jax.monitoring.register_event_time_span_listener(_on_span)
      _registered = True
    _open.append(clock)
  try:
    yield clock
  finally:
    with _lock:
      _open.remove(clock)
