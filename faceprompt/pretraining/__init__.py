"""What is pretraining's own: its config, captions from labels, the contrastive loss, the data mix, the image
cache, augmentation, the model it trains and its zero-shot scoring. ``faceprompt.pretraining.loop`` runs them on
the shared engine (``faceprompt.engine``)."""
