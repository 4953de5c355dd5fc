"""Entry point: python -m ganjax.main --config=configs/hgg.py[:preset] --workdir=DIR [--config.key=value].

Dispatches on config.experiment. Exit status: 0 done, 1 training diverged (NaN), 2 bad input or config,
130 interrupted by SIGTERM/Ctrl-C after saving (rerun with the same workdir to resume).

Multi-host (several machines, or several processes): start the same command on every process with
--distributed (and --coordinator_address=host:port --num_processes=N --process_id=i where JAX cannot detect
them itself, as it does on Slurm, Open MPI and Cloud TPU pods). The batch is then split over the devices of
all processes and only process 0 writes outputs (docs/scale_out.md).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file, e.g. configs/hgg.py:quick.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host runs).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])

EXPERIMENTS = {"hgg": "ganjax.hgg"}


def main(argv):
  del argv
  import importlib
  import logging as std_logging

  from absl import logging
  logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)

  if _DISTRIBUTED.value:
    import jax
    if (jax.config.jax_platforms or "").startswith("cpu"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
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
