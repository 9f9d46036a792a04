"""What prompt methods cost on a backbone and device, against zero-shot: ``faceprompt bench``.

============  =========================================================================================
timing        shared helpers: timing one call, FLOPs, achieved TFLOP/s, method specs, the tower to time
inference     ``bench_methods``: latency, throughput and memory of inference per method and batch size
epoch_cache   ``bench_epoch_cache``: one training epoch with and without cached image features
training      ``bench_training``: training steps per method against the bare tower's forward-backward
parameters    ``method_parameter_table``: parameters each method adds to a backbone (no weights needed)
============  =========================================================================================
"""
