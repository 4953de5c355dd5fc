"""Entry point: python -m ganjax.main --config=configs/hgg.py[:preset] --workdir=DIR [--config.key=value].

Dispatches on config.experiment. Exit status: 0 done, 1 training diverged (NaN), 2 bad input or config,
130 interrupted by SIGTERM/Ctrl-C after saving (rerun with the same workdir to resume).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file, e.g. configs/hgg.py:quick.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
flags.mark_flags_as_required(["config", "workdir"])

EXPERIMENTS = {"hgg": "ganjax.hgg"}


def main(argv):
  del argv
  import importlib
  import logging as std_logging

  from absl import logging
  logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)

  config = _CONFIG.value
  if config.experiment not in EXPERIMENTS:
    sys.exit(f"unknown experiment {config.experiment!r}; known: {sorted(EXPERIMENTS)}")
  module = importlib.import_module(EXPERIMENTS[config.experiment])
  try:
    module.train_and_evaluate(config, _WORKDIR.value)
  except module.BadInputError as e:
    print(f"ganjax: error: {e}", file=sys.stderr)
    sys.exit(2)
  except module.TrainingDivergedError as e:
    print(f"ganjax: training stopped: {e}", file=sys.stderr)
    sys.exit(1)
  except module.InterruptedError_ as e:
    print(f"ganjax: {e}", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
  app.run(main)
