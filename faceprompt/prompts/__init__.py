"""Prompt methods, registered by name. A method is a text prompt plus a visual prompt.

=============  ===========  ==========  =================================================
method         text         visual      what trains
=============  ===========  ==========  =================================================
zero-shot      templates    none        nothing
coop           coop         none        M context vectors per task
softcpt        softcpt      none        task-context tokens + the context generator
vpt            templates    vpt         P visual tokens (x depth if deep), one set
vpt-ts         templates    vpt (TS)    one set of P visual tokens per task
v2pt           templates    v2pt        learned prompts + the VAE encoder/decoder
A+B            A's text     B's visual  both (e.g. softcpt+vpt, coop+vpt-ts)
=============  ===========  ==========  =================================================
"""
from faceprompt.prompts import text as _text  # noqa: F401  (registers the text prompts)
from faceprompt.prompts import visual as _visual  # noqa: F401  (registers the visual prompts)
from faceprompt.prompts.base import (
    METHODS, MethodPreset, Output, PromptModel, added_parameters, build_model, list_methods, list_text_prompts,
    list_visual_prompts, method_configs, register_method, resolve_method,
)

for _preset in (
    MethodPreset("zero-shot", "templates", "none", summary="hand-written templates, nothing trains"),
    MethodPreset("coop", "coop", "none", summary="CoOp: learnable context per task"),
    MethodPreset("softcpt", "softcpt", "none", summary="SoftCPT-CATS: context generated from the task description"),
    MethodPreset("vpt", "templates", "vpt", summary="VPT: one set of visual tokens for all tasks"),
    MethodPreset("vpt-ts", "templates", "vpt", visual_defaults={"task_specific": True},
                 summary="VPT-TS: one set of visual tokens per task"),
    MethodPreset("v2pt", "templates", "v2pt", summary="V2PT: visual tokens + VAE per-image prompts"),
):
    register_method(_preset)

__all__ = ["METHODS", "MethodPreset", "Output", "PromptModel", "added_parameters", "build_model",
           "list_methods", "list_text_prompts", "list_visual_prompts", "method_configs", "register_method",
           "resolve_method"]
