"""What a user runs to prepare the datasets: ``python -m data_prep`` (see README.md here).

The adapters that read each dataset live in the package (:mod:`faceprompt.data.adapters`); this folder only
drives :func:`faceprompt.data.prepare.prepare_dataset` over the datasets of a book profile found in a shared
data folder, read as the book reads them (:func:`faceprompt.book.datasets.parse_datasets`).
"""
