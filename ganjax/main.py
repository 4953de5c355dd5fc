"""Entry point: python -m ganjax.main --config=configs/<method>.py[:preset] --workdir=DIR [--config.key=value].

Runs every method through its package's run(config, workdir), chosen by config.experiment: hgg (the main
job), ganplify (amplification), dctr_toys (DCTR reweighting), zmumu (analysis-specific generation).
Exit status: 0 done, 1 training diverged (NaN), 2 bad input, config or workdir, 3 internal error,
130 interrupted by SIGTERM/Ctrl-C after saving (rerun with the same workdir to resume).

Multi-host (several machines, or several processes): start the same command on every process with
--distributed (and --coordinator_address=host:port --num_processes=N --process_id=i where JAX cannot detect
them itself, as it does on Slurm, Open MPI and Cloud TPU pods). The batch is then split over the devices of
all processes and only process 0 writes outputs (docs/scale_out.md).
"""

import importlib
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

# config.experiment -> the package whose run(config, workdir) runs it
EXPERIMENTS = {"hgg": "ganjax.hgg", "ganplify": "ganjax.ganplify", "dctr_toys": "ganjax.dctr",
               "zmumu": "ganjax.asg"}


def _one_line(e: BaseException) -> str:
  """An exception as one line: a KeyError's own text, the last line of a wrapped traceback."""
  text = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
  text = text.replace("\\'", "'").replace("\\n", "\n")
  if isinstance(e, KeyError):
    while len(text) > 1 and text[0] == text[-1] == "'" and text.count("'") > 2:
      text = text[1:-1]
    text = "no config key " + text
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if any(line.startswith("Traceback (most recent call last)") for line in lines):
    lines = lines[-1:]
  elif any("No such file or directory" in line for line in lines):
    lines = [line for line in lines if "No such file" in line][:1]
  text = "; ".join(lines) or type(e).__name__
  return text if len(text) < 400 else text[:400] + " ..."


def parse_flags(argv):
  """absl's flag parsing with every user error (unknown flag, misspelt config key, missing config file,
  unknown preset) as one line on stderr and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except KeyboardInterrupt:
    _interrupted_before_start()
  except flags.Error as e:
    cause = e.__cause__ or e.__context__
    text = _one_line(cause if cause is not None and not isinstance(e, flags.UnrecognizedFlagError) else e)
    print(f"ganjax: error: {_group_as_value(text, argv) or text}", file=sys.stderr)
  except (Exception, SystemExit) as e:  # noqa: BLE001 - a config file that fails to load is user input
    cause = e.__cause__ or e.__context__
    text = _one_line(cause if isinstance(cause, KeyError) else e)
    print(f"ganjax: error: {_group_as_value(text, argv) or text}", file=sys.stderr)
  sys.exit(2)


def _group_as_value(text: str, argv) -> str | None:
  """`--config.train.optimizer=adamw` sets a group of settings to a value: say so and name its keys."""
  import re
  m = re.search(r"Failed to parse '(.*?)' as a ConfigDict", text)
  if not m:
    return None
  arg = next((a for a in argv if a.startswith("--config.") and a.endswith("=" + m.group(1))), None)
  if arg is None:
    return None
  key = arg[len("--config."):].split("=", 1)[0]
  try:
    node = _CONFIG.value
    for part in key.split("."):
      node = node[part]
    keys = sorted(node.keys())
  except Exception:  # noqa: BLE001 - the message is still right without the list of keys
    keys = []
  example = "name" if "name" in keys or not keys else keys[0]
  return (f"{arg}: config.{key} is a group of settings, not a value; set one of its keys"
          + (f" ({', '.join(keys)})" if keys else "") + f", e.g. --config.{key}.{example}={m.group(1)}")


def main(argv):
  del argv
  import logging as std_logging

  from absl import logging
  logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)

  if _DISTRIBUTED.value:
    import jax
    if (jax.config.jax_platforms or "").startswith("cpu"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
    try:
      jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                                 process_id=_PROCESS_ID.value)
    except KeyboardInterrupt:
      _interrupted_before_start()
  try:
    config = _CONFIG.value
    experiment = config.experiment
  except KeyboardInterrupt:
    _interrupted_before_start()
  except Exception as e:  # noqa: BLE001 - a config file that cannot be loaded (config_flags loads it lazily)
    print(f"ganjax: error: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)
  if experiment not in EXPERIMENTS:
    print(f"ganjax: error: unknown experiment {config.experiment!r}; known: {sorted(EXPERIMENTS)}",
          file=sys.stderr)
    sys.exit(2)
  sys.exit(run_experiment(config, _WORKDIR.value))


_SIGNAL = {"name": None}


def _interrupt(signum, _frame):
  """SIGTERM outside training (setup, compilation, evaluation, output writing): raised as KeyboardInterrupt,
  which no `except Exception` of a reader or of the checkpoint code can mistake for bad input or damage.
  Inside training the driver's own handler takes over (it saves at the end of the segment)."""
  import signal
  _SIGNAL["name"] = signal.Signals(signum).name
  raise KeyboardInterrupt


def _interrupted_before_start():
  print(f"ganjax: interrupted: {_SIGNAL['name'] or 'Ctrl-C'} received before the run started; nothing was "
        "written", file=sys.stderr, flush=True)
  sys.exit(130)


def run_experiment(config, workdir: str) -> int:
  """Run config.experiment's package into workdir; every way it ends as (one line on stderr, exit status):
  GanjaxError -> its exit_code (1 diverged, 2 bad input, 130 interrupted after saving), SIGTERM / Ctrl-C
  outside training -> 130, anything else (our bug) -> 3 with the traceback in workdir/error.log."""
  import signal

  from ganjax.engine.errors import GanjaxError
  _SIGNAL["name"] = None
  previous = signal.signal(signal.SIGTERM, _interrupt)
  try:
    module = importlib.import_module(EXPERIMENTS[config.experiment])
    module.run(config, workdir)
    return 0
  except GanjaxError as e:
    prefix = {1: "training stopped", 2: "error", 130: "interrupted"}.get(e.exit_code, "error")
    print(f"ganjax: {prefix}: {e}", file=sys.stderr, flush=True)
    return e.exit_code
  except KeyboardInterrupt:
    print(f"ganjax: interrupted: {_SIGNAL['name'] or 'Ctrl-C'} received outside training; nothing is lost: "
          f"rerun with --workdir={workdir} to finish (metrics.json is written last, so a run without it is "
          "redone from its checkpoints)", file=sys.stderr, flush=True)
    return 130
  except Exception as e:  # noqa: BLE001 - our bug: one line here, the traceback in workdir/error.log
    import os
    import traceback
    log = os.path.join(workdir, "error.log")
    try:
      os.makedirs(workdir, exist_ok=True)
      with open(log, "w") as f:
        traceback.print_exc(file=f)
    except OSError:
      log = None
    print(f"ganjax: internal error: {type(e).__name__}: {_one_line(e)}"
          + (f" (traceback in {log})" if log else ""), file=sys.stderr, flush=True)
    return 3
  finally:
    signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
  import signal
  signal.signal(signal.SIGTERM, _interrupt)  # every phase: parsing and setup too (run_experiment keeps it)
  app.run(main, flags_parser=parse_flags)
