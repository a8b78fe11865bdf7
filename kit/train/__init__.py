"""Training, one concern per module: ``config`` (the one list of options), ``data`` (datasets,
samplers, balancing applied), ``loop`` (a run, an epoch, evaluation), ``checkpoint`` (one
versioned schema), ``thresholds`` (tuning and the rescaling `kit predict` applies),
``distributed`` (torchrun), ``crossfit`` and ``search`` beside them.

Nothing is imported here: `kit predict` takes the checkpoint and thresholds modules without the
training loop, and building the command line takes ``config`` without torch."""
