"""The one training engine behind ``faceprompt train`` and ``faceprompt pretrain``.

==========  ====================================================================================
schedule    linear warm-up then cosine decay, as a LambdaLR over every parameter group
optim       optimizers by name, weight-decay groups, one optimizer step (backward, clip, step)
seeding     seeding every random source, seeds derived per epoch
state       checkpoints (safetensors + JSON, never pickle) with every random state; recipe checks
selection   which epoch's prompts are kept and when patience runs out (metric, or loss or metric)
runtime     one process in plain PyTorch, or data-parallel through Hugging Face Accelerate; fp16 scaler
progress    progress bars, and Ctrl-C / SIGTERM turned into errors.Interrupted with a resume hint
run_folder  a run folder's guard: what counts as a run already there, and one writer at a time
==========  ====================================================================================
"""
