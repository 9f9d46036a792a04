"""The book layer: what the notebooks call, one job per module.

=============  ===========================================================================================
module         job
=============  ===========================================================================================
_machinery     start-up, glue, the glue keys and their check, reading executed notebooks back
methods        the book's method lists, derived from the prompt registry; run folder names
datasets       prepare a profile's datasets; split and label tables; sample faces
leakage        check a run's test split against the split a pretrained model recorded
runs           zero-shot, template comparison, one training run and its evaluation
results        collect evaluated runs; accuracy, summary, one-off and fairness tables
target         the held-out target: every method's seed mean, spread and gain; the validation-selected one
few_shot       data efficiency on the held-out target: a method tuned on k labelled faces per class
calibration    reliability curves on the bins of ``metrics.expected_calibration_error``
seeds          means and spreads over training seeds, and whether a method beats zero-shot
attention      the models the attention chapter looks inside
demo           the example photo run through the demo app
photos         photos from outside every dataset, annotated by the demo's own path
wild           the face-crop and demo chapters' numbers: CPU benchmarks' JSON, the demo's settings
speed          the speed chapter's numbers (``faceprompt bench``'s JSON); added parameters and latency per method
views          the protocol chapter's measurement of cached augmented views of the task balance's copies
faceclip_tiny  the faceclip-tiny chapter's numbers: its recipe, model config and GPU timing
architecture   an open_clip model's shape, read from its config and its tower built on the meta device
logged         measurements from runs that kept no JSON, copied once with the command that printed them
build          run the notebooks on a profile with papermill, then build the book (``python -m``)
=============  ===========================================================================================
"""
