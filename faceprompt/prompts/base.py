"""The prompt-method interface: a text part and a visual part around one frozen backbone.

A method is a :class:`PromptModel` composed of one *text prompt* (how each task's
class text features are made: templates, CoOp, SoftCPT) and one *visual prompt*
(how image features are made: none, VPT, V2PT). Registered method names are
presets of that composition (``vpt`` = templates + VPT, ``softcpt+vpt`` = SoftCPT
+ VPT), so combining methods needs no new class.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from faceprompt.backbones import Backbone
from faceprompt.config import Config, coerce
from faceprompt.registry import Registry
from faceprompt.tasks import Task


@dataclass(frozen=True)
class PromptConfig(Config):
    """Base of every component config: frozen, JSON round-trip, unknown fields and wrong types refused by name."""


@dataclass
class Output:
    """Per-task logits [B, C_t], and auxiliary losses that training adds (e.g. V2PT's KL)."""

    logits: dict[str, torch.Tensor]
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


class TextPrompt(nn.Module):
    """Makes each task's class text features [C_t, E]; never depends on the image."""

    kind: ClassVar[str]
    config_class: ClassVar[type[PromptConfig]]

    def __init__(self, cfg: PromptConfig, backbone: Backbone, tasks: tuple[Task, ...]):
        super().__init__()
        self.cfg = cfg
        self.tasks = tasks
        # A plain attribute, not a submodule: the backbone belongs to the PromptModel.
        object.__setattr__(self, "backbone", backbone)

    def class_features(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class VisualPrompt(nn.Module):
    """Makes image features: one [B, E] for all tasks, or one per task."""

    kind: ClassVar[str]
    config_class: ClassVar[type[PromptConfig]]
    touches_image_path: ClassVar[bool] = True  # False: image features can be cached on disk

    def __init__(self, cfg: PromptConfig, backbone: Backbone, tasks: tuple[Task, ...]):
        super().__init__()
        self.cfg = cfg
        self.tasks = tasks
        object.__setattr__(self, "backbone", backbone)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor | dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(features [B, E] or {task: [B, E]}, auxiliary losses)."""
        raise NotImplementedError

    def prompts_for(self, images: torch.Tensor, task: str) -> tuple[torch.Tensor | None, bool]:
        """The prompt tokens this component inserts for ``task`` on ``images`` as at evaluation, and whether
        they are deep (one set per layer): what
        :meth:`~faceprompt.backbones.Backbone.image_tokens` takes. None: no prompt tokens."""
        self.task_index(task)
        return None, False

    def logit_log_scale(self) -> torch.Tensor | None:
        """A learned t for exp(t) * cos in place of the tower's own; None: the tower's."""
        return None

    def task_index(self, task: str) -> int:
        names = [t.name for t in self.tasks]
        if task not in names:
            raise ValueError(f"unknown task {task!r}; this model has {names}")
        return names.index(task)


TEXT_PROMPTS: Registry[type[TextPrompt]] = Registry("text prompt kind")
VISUAL_PROMPTS: Registry[type[VisualPrompt]] = Registry("visual prompt kind")


def _register_kind(registry: Registry, kind: str):
    def wrap(cls):
        registry.add(kind, cls)
        cls.kind = kind
        return cls
    return wrap


def register_text_prompt(kind: str):
    return _register_kind(TEXT_PROMPTS, kind)


def register_visual_prompt(kind: str):
    return _register_kind(VISUAL_PROMPTS, kind)


@dataclass(frozen=True)
class MethodPreset:
    """A named method: which text and visual components, with config defaults."""

    name: str
    text: str
    visual: str
    text_defaults: dict = field(default_factory=dict)
    visual_defaults: dict = field(default_factory=dict)
    summary: str = ""

    @property
    def option_names(self) -> frozenset[str]:
        """Every option its text and visual parts declare, by its flat name."""
        return frozenset(f.name for registry, kind in ((TEXT_PROMPTS, self.text), (VISUAL_PROMPTS, self.visual))
                         for f in dataclasses.fields(registry[kind].config_class))


METHODS: Registry[MethodPreset] = Registry("method")


def register_method(preset: MethodPreset) -> MethodPreset:
    if "+" in preset.name:
        raise ValueError(f"method {preset.name!r}: '+' joins a text method and a visual one; pick another name")
    return METHODS.add(preset.name, preset)


def list_methods() -> list[str]:
    """Every registered method name, in registration order."""
    return METHODS.names()


def list_text_prompts() -> list[str]:
    return TEXT_PROMPTS.names()


def list_visual_prompts() -> list[str]:
    return VISUAL_PROMPTS.names()


class PromptModel(nn.Module):
    """A frozen backbone plus a text prompt and a visual prompt; only the prompts train."""

    def __init__(self, method: str, backbone: Backbone, tasks: tuple[Task, ...],
                 text: TextPrompt, visual: VisualPrompt):
        super().__init__()
        self.method = method
        self.backbone = backbone
        self.tasks = tuple(tasks)
        self.text = text
        self.visual = visual
        self._class_feature_cache: dict[str, torch.Tensor] | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def caches_image_features(self) -> bool:
        """True when the image path is the frozen backbone alone, so features can be computed once."""
        return not self.visual.touches_image_path

    def train(self, mode: bool = True) -> "PromptModel":
        super().train(mode)
        self.backbone.train(False)
        self.clear_cache()
        return self

    def clear_cache(self) -> None:
        self._class_feature_cache = None

    def class_features(self) -> dict[str, torch.Tensor]:
        """Class text features per task; computed once and reused unless the text prompt is training."""
        if self.training and any(p.requires_grad for p in self.text.parameters()):
            return self.text.class_features()
        if self._class_feature_cache is None:
            with torch.no_grad():
                self._class_feature_cache = {k: v.detach() for k, v in self.text.class_features().items()}
        return self._class_feature_cache

    def logits_from_features(self, image_features: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        text = self.class_features()
        log_scale = self.visual.logit_log_scale()
        out = {}
        for task in self.task_names:
            img = image_features[task] if isinstance(image_features, dict) else image_features
            # No cast to the image features' dtype: the logits are computed in fp32 (Backbone.logits).
            out[task] = self.backbone.logits(img, text[task], log_scale)
        return out

    def forward(self, images: torch.Tensor) -> Output:
        features, aux = self.visual(images)
        return Output(self.logits_from_features(features), aux)

    def forward_features(self, image_features: torch.Tensor) -> Output:
        """Logits from cached frozen image features (methods that leave the image path untouched)."""
        if not self.caches_image_features:
            raise RuntimeError(f"method {self.method!r} changes the image path: it needs images, not features")
        return Output(self.logits_from_features(image_features))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by part, "text" and "visual": what a per-part learning rate or a staged
        schedule (text first, then both, as the thesis trained SoftCPT + VPT) needs."""
        return {"text": [p for p in self.text.parameters() if p.requires_grad],
                "visual": [p for p in self.visual.parameters() if p.requires_grad]}

    def named_trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def method_config(self) -> dict[str, Any]:
        return {"text": {"kind": self.text.kind, **self.text.cfg.to_dict()},
                "visual": {"kind": self.visual.kind, **self.visual.cfg.to_dict()}}

    def print_trainable_parameters(self) -> str:
        added = added_parameters(self)
        total = sum(p.numel() for p in self.backbone.parameters())
        line = f"{self.method}: trainable {added:,} || backbone {total:,} || {100 * added / max(total, 1):.4f}%"
        print(line)
        return line


def added_parameters(model: PromptModel) -> int:
    """Exactly what trains: every parameter that requires grad (the backbone's never do)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resolve_method(method: str) -> MethodPreset:
    """A registered preset, or a combination 'TEXT+VISUAL' of registered presets."""
    if method in METHODS:
        return METHODS[method]
    if "+" in method:
        left, right = (part.strip() for part in method.split("+", 1))
        if left in METHODS and right in METHODS:
            a, b = METHODS[left], METHODS[right]
            return MethodPreset(method, a.text, b.visual, a.text_defaults, b.visual_defaults,
                                f"{a.summary} + {b.summary}")
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)} (or TEXT+VISUAL, e.g. softcpt+vpt)")


PARTS = ("text", "visual")  # a method's two components, and the keys that give options by component


@dataclass(frozen=True, eq=False)
class MethodOptions(Mapping):
    """A method's options, parsed once: the typed configs of its text and visual parts, which build it.

    As a read-only mapping it holds the options as they were given, each with its typed value: flat
    (``{"tokens": 10}``, routed to the part that declares the name, the visual one first) or by part
    (``{"text": {...}, "visual": {...}}``). That mapping is what a run config saves, so a saved config
    reads as it was written. Equal to any mapping of the same options.
    """

    method: str
    text: PromptConfig
    visual: PromptConfig
    given: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, method: str, options: Mapping | None = None, where: str | None = None) -> "MethodOptions":
        """``options`` of ``method``, checked: an unknown option, a wrong type or an impossible value raises
        ValueError naming it, after ``where`` when given (``"config x.yaml: method_options"`` names a wrong
        type ``... method_options.tokens``)."""
        preset = resolve_method(method)
        classes = {"text": TEXT_PROMPTS[preset.text].config_class, "visual": VISUAL_PROMPTS[preset.visual].config_class}
        prefix = f"{where}: " if where else ""
        try:
            values, owners = _route(preset, classes, dict(options or {}))
        except ValueError as err:
            raise ValueError(f"{prefix}{err}") from None
        for key, part in owners.items():
            hint = typing.get_type_hints(classes[part])[key]
            values[part][key] = coerce(values[part][key], hint,
                                       f"{where}.{key}" if where else f"{method}.{part}: field {key!r}")
        try:
            parts = {part: classes[part].from_dict(values[part], f"{method}.{part}") for part in PARTS}
        except ValueError as err:
            raise ValueError(f"{prefix}{err}") from None
        return cls(method, parts["text"], parts["visual"], _typed(dict(options or {}), parts, owners))

    def __getitem__(self, key: str) -> Any:
        return self.given[key]

    def __iter__(self):
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.given)


def _route(preset: MethodPreset, classes: dict[str, type[PromptConfig]], options: dict) -> tuple[dict, dict]:
    """({part: its options over the preset's defaults}, {flat option: the part that declares it})."""
    defaults = {"text": preset.text_defaults, "visual": preset.visual_defaults}
    values, owners = {}, {}
    for part in PARTS:
        own = options.pop(part, None) or {}
        if not isinstance(own, Mapping):
            raise ValueError(f"method {preset.name!r}: {part!r} must be a mapping of {part} options, got {own!r}")
        values[part] = {k: v for k, v in {**defaults[part], **own}.items() if k != "kind"}
    names = {part: {f.name for f in dataclasses.fields(classes[part])} for part in PARTS}
    for key, value in options.items():
        # a name both parts declare (V2PT's and SoftCPT's "hidden") goes to the visual part, as it always has
        part = "visual" if key in names["visual"] else "text" if key in names["text"] else None
        if part is None:
            raise ValueError(f"method {preset.name!r}: unknown option {key!r}; text options {sorted(names['text'])}, "
                             f"visual options {sorted(names['visual'])}")
        values[part][key] = value
        owners[key] = part
    return values, owners


def _typed(options: dict, parts: dict[str, PromptConfig], owners: dict[str, str]) -> dict:
    """``options`` in their given shape, each value read back from the part config that took it."""
    def value(part: str, key: str, given: Any) -> Any:
        return given if key == "kind" else getattr(parts[part], key)

    return {key: {k: value(key, k, v) for k, v in (given or {}).items()} if key in PARTS
            else value(owners[key], key, given) for key, given in options.items()}


def declared_options(method: str, options: Mapping) -> dict:
    """The entries of ``options`` that ``method``'s text or visual part declares: one set of options serves
    several methods (``faceprompt params --set``, a book profile's ``method_options``), each taking its own."""
    return {k: v for k, v in options.items() if k in resolve_method(method).option_names}


def method_configs(method: str, config: Mapping | None = None) -> tuple[PromptConfig, PromptConfig]:
    """The validated (text, visual) component configs of ``method``: checks options without a backbone.

    ``config`` may be flat or {"text": {...}, "visual": {...}}; a bad option raises ValueError naming it.
    """
    options = MethodOptions.parse(method, config)
    return options.text, options.visual


def build_model(method: str, backbone: Backbone, tasks: tuple[Task, ...] | None = None,
                config: MethodOptions | Mapping | None = None) -> PromptModel:
    """Build a method around a frozen backbone. ``config``: its parsed options (a TrainConfig's
    ``method_options``), or options to parse, flat or {"text": {...}, "visual": {...}}."""
    from faceprompt.tasks import get_tasks

    tasks = tuple(tasks) if tasks is not None else get_tasks()
    tasks = tuple(get_tasks([t])[0] if isinstance(t, str) else t for t in tasks)
    preset = resolve_method(method)
    options = config if isinstance(config, MethodOptions) else MethodOptions.parse(method, config)
    if options.method != preset.name:
        raise ValueError(f"options parsed for method {options.method!r} can't build {preset.name!r}")
    text = TEXT_PROMPTS[preset.text](options.text, backbone, tasks)
    visual = VISUAL_PROMPTS[preset.visual](options.visual, backbone, tasks)
    model = PromptModel(preset.name, backbone, tasks, text, visual)
    return model.to(backbone.device)
