"""What is pretraining's own: its config, captions from labels, the contrastive loss, the data mix, the image
cache, augmentation, the model it trains and its zero-shot scoring. ``loop`` runs them on the shared engine
(``faceprompt.engine``).

===========  ===========================================================================================
config       :class:`PretrainConfig`, read from YAML/JSON and checked before any work
loop         ``pretrain(config)``: the recipe, step by step, with checkpoints, resume and the export
data         the data mix: labelled rows with ``faceprompt prepare``'s splits, their images, each epoch's draw
cache        every image decoded and resized once into one uint8 tensor file
augment      batched augmentation on uint8 images, every draw from one CPU generator
captions     captions written from labels, and which (image, caption) pairs they make positive
loss         CLIP's softmax or SigLIP's sigmoid contrastive loss over images x distinct captions
prompt_loss  the zero-shot classifier's own loss: every image against every class prompt of its tasks
model        the open_clip model it trains, optimizer groups, patch dropping, the local-dir export
scoring      zero-shot scores of a pretrained model through the project's zero-shot method and metrics
===========  ===========================================================================================
"""
