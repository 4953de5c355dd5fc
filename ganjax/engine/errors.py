"""The errors a run ends with, each with its exit status (ganjax.main maps them; README, "Exit codes")."""


class GanjaxError(Exception):
  exit_code = 3


class BadInputError(GanjaxError, ValueError):
  """Input data, configuration or workdir that cannot be used; raised before any compute."""
  exit_code = 2


class TrainingDivergedError(GanjaxError, RuntimeError):
  """A loss became NaN/inf (in every member of an ensemble); the best checkpoint so far is kept."""
  exit_code = 1


class InterruptedError_(GanjaxError, RuntimeError):
  """SIGTERM / Ctrl-C: the latest state was saved; rerun with the same workdir to resume."""
  exit_code = 130
