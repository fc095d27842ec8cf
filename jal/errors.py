"""The one exception type jal raises for bad input.

A `JalError` carries a single line that says what is wrong and how to fix it.
`jal.main` prints it without a traceback and exits with status 2.
"""


class JalError(ValueError):
  """Bad configuration, bad data or a bad work directory, explained in one line."""
