"""Prompt methods, registered by name. A method is a text prompt plus a visual prompt.

=============  ===========  ==========  =================================================
method         text         visual      what trains
=============  ===========  ==========  =================================================
zero-shot      templates    none        nothing
coop           coop         none        M context vectors per task
softcpt        softcpt      none        task-context tokens + the context generator
vpt            templates    vpt         ``tokens`` visual tokens (x depth if deep), one set
vpt-ts         templates    vpt (TS)    one set of ``tokens`` visual tokens per task
v2pt           templates    v2pt        learned prompts + the VAE encoder/decoder
A+B            A's text     B's visual  both (e.g. softcpt+vpt, coop+vpt-ts)
=============  ===========  ==========  =================================================

A method's module (``templates``, ``coop``, ``softcpt``, ``vpt``, ``v2pt``) holds its options, its prompt
class and the registration of its presets; importing this package imports them in this order, which is
the order of :func:`~faceprompt.prompts.base.list_methods`.
"""
from faceprompt.prompts import templates as _templates  # noqa: F401  (registers zero-shot)
from faceprompt.prompts import coop as _coop  # noqa: F401  (registers coop)
from faceprompt.prompts import softcpt as _softcpt  # noqa: F401  (registers softcpt)
from faceprompt.prompts import vpt as _vpt  # noqa: F401  (registers the visual kind none, vpt and vpt-ts)
from faceprompt.prompts import v2pt as _v2pt  # noqa: F401  (registers v2pt)
from faceprompt.prompts.base import (
    METHODS, MethodOptions, MethodPreset, Output, PromptModel, added_parameters, build_model, declared_options,
    list_methods, list_text_prompts, list_visual_prompts, method_configs, register_method, resolve_method,
)

__all__ = ["METHODS", "MethodOptions", "MethodPreset", "Output", "PromptModel", "added_parameters", "build_model",
           "declared_options", "list_methods", "list_text_prompts", "list_visual_prompts", "method_configs",
           "register_method", "resolve_method"]
