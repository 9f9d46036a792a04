"""The book layer: what the notebooks call, one job per module.

=============  ==============================================================================
module         job
=============  ==============================================================================
startup        notebook start-up: project root, torch threads, quiet logs, the default backbone
glue           hand a value to the book (MyST-NB glue) and format numbers for prose
keys           every glue key the chapters use, with the notebook and function that glue it
methods        the book's method lists, derived from the prompt registry; run folder names
datasets       prepare a profile's datasets; split and label tables; sample faces
leakage        check a run's test split against the split a pretrained model recorded
runs           zero-shot, template comparison, one training run and its evaluation
results        collect evaluated runs; accuracy, summary, one-off and fairness tables
costs          added parameters and inference latency per method
calibration    reliability curves on the bins of ``metrics.expected_calibration_error``
seeds          means and spreads over training seeds, and whether a method beats zero-shot
attention      the models the attention chapter looks inside
demo           the example photo run through the demo app
recorded       numbers recorded by benchmarks and by faceclip-tiny's pretraining
=============  ==============================================================================
"""
