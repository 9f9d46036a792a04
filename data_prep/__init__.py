"""What a user runs to prepare the datasets: ``python -m data_prep`` (see README.md here).

The adapters that read each dataset live in the package (:mod:`faceprompt.data.adapters`); this folder only
drives :func:`faceprompt.data.prepare.prepare_dataset` over the datasets found in a shared data folder.
"""
