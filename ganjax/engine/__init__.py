"""The one engine: a training core (core, optim, losses, members) and a host driver (driver, checkpoints).

A method (ganjax.hgg, ganjax.ganplify, ganjax.dctr, ganjax.asg) supplies its models, losses, sampler and
evaluation as a TrainSpec and a Loop; it never writes its own training loop.
"""

from ganjax.engine.core import (Ctx, Init, Sampler, Train, TrainSpec, TrainState, Update, epoch_sampler,
                                make_train, step_sampler)
from ganjax.engine.errors import BadInputError, GanjaxError, InterruptedError_, TrainingDivergedError
from ganjax.engine.members import Members, make_members, member_keys, member_sharding, over_members
from ganjax.engine.optim import make_optimizer, set_hyperparams

__all__ = ["Ctx", "Init", "Sampler", "Train", "TrainSpec", "TrainState", "Update", "epoch_sampler", "make_train",
           "step_sampler", "BadInputError", "GanjaxError", "InterruptedError_", "TrainingDivergedError", "Members",
           "make_members", "member_keys", "member_sharding", "over_members", "make_optimizer", "set_hyperparams"]
