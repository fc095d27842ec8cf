"""The one exception type jal raises for bad input.

A `JalError` carries a single line that says what is wrong and how to fix it.
`jal.main` prints it without a traceback and exits with status 2.
"""


class JalError(ValueError):
  """Bad configuration, bad data or a bad work directory, explained in one line."""


def check_choice(value, choices, key: str) -> None:
  """Refuses a setting that is not one of ``choices``, naming the key and the choices.

  Args:
    value: the setting.
    choices: the values it may take.
    key: its config key, e.g. ``'config.strategy.ensemble.score'``.

  Raises:
    JalError: ``"config.X='value' is unknown; use one of 'a', 'b'"``.
  """
  if value not in choices:
    raise JalError(f"{key}={value!r} is unknown; use one of "
                   f"{', '.join(repr(c) for c in choices)}")
