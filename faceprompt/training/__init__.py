"""Prompt training: what ``faceprompt train`` runs, on the shared engine (``faceprompt.engine``).

============  =========================================================================================
config        ``TrainConfig``, read from YAML/JSON and checked before any work; presets, stand-ins
data          the rows a run trains and validates on, checked; repeated and shared images warned of
loop          ``fit(config)``: the model, epochs, validation, kept prompts, checkpoints, resume
losses        the masked multitask cross-entropy, the age penalties, class weights, anchor divergence
task_weights  task weights that follow an exponential moving average of each task's loss
balance       ``task_balance``'s duplicated (and augmented) rows; class-balanced draw weights
warm_start    ``init_from``: a run's text prompt started from an earlier run's trained tensors
============  =========================================================================================
"""
