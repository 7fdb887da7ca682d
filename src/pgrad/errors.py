"""User-facing errors: one line that says what is wrong and what to do.

Anything raised as a `PgradError` is printed by the CLI as ``pgrad: error: <message>`` with exit code 2
(3 for a `NumericsError`: the input was fine but training diverged), never as a traceback. Library users get
the exception itself.
"""


class PgradError(Exception):
    """A problem with the user's input (algorithm, environment, hyperparameter, run directory, checkpoint)."""


class ConfigError(PgradError, ValueError):
    """An unknown or out-of-range hyperparameter."""


class EnvError(PgradError, ValueError):
    """An unknown environment or an observation/action space the algorithm does not support."""


class CheckpointError(PgradError):
    """A missing, truncated, corrupted or mismatched checkpoint or run directory."""


class NumericsError(PgradError):
    """A non-finite loss, gradient or parameter stopped training."""
