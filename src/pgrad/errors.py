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


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped training. ``pgrad.train`` raises it once checkpoints/last.pt holds the
    step it stopped at (a KeyboardInterrupt, so a script stops as it would on Ctrl-C, rather than carrying on as
    if training had finished); the CLI prints its message and exits 128 + the signal (130, 143).

    ``step`` is that of the checkpoint to continue from (None: the run stopped before its first one; ``--resume``
    then starts it again from its config.yaml); ``signum`` the signal; ``saved`` False when a second signal
    abandoned the update under way, so the last periodic checkpoint stands."""

    def __init__(self, run_dir: object, step: int | None, signum: int, saved: bool = True):
        import shlex

        self.run_dir, self.step, self.signum, self.saved = run_dir, step, signum, saved
        where = f"stopped at step {step}" if step is not None else "stopped before the first checkpoint"
        super().__init__(f"{where}; continue with: pgrad train --resume {shlex.quote(str(run_dir))}")
