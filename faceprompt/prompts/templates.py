"""Zero-shot: hand-written class prompts from templates; nothing trains."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from faceprompt.prompts.base import MethodPreset, PromptConfig, TextPrompt, register_method, register_text_prompt
from faceprompt.tasks import CLASS_SENTENCES, class_sentences


@dataclass(frozen=True)
class TemplatesConfig(PromptConfig):
    """Zero-shot class prompts: each task's templates (or these), ensembled by averaging features."""

    templates: tuple[str, ...] | None = None  # None: each task's own templates
    ensemble: bool = True  # False: only the first template
    sentences: str | None = None  # a named set of one sentence per class instead ("thesis")

    def validate(self, where: str = "config") -> None:
        if self.templates is not None and (not self.templates or any("{}" not in t for t in self.templates)):
            raise ValueError(f"{where}: field 'templates': every template needs a '{{}}' placeholder")
        if self.sentences is not None:
            if self.sentences not in CLASS_SENTENCES:
                raise ValueError(f"{where}: field 'sentences' must be one of {sorted(CLASS_SENTENCES)}, "
                                 f"got {self.sentences!r}")
            if self.templates is not None:
                raise ValueError(f"{where}: fields 'sentences' and 'templates' exclude each other")


@register_text_prompt("templates")
class TemplatePrompt(TextPrompt):
    """Frozen prompts from templates; nothing trains."""

    config_class = TemplatesConfig

    def templates_for(self, task) -> tuple[str, ...]:
        templates = self.cfg.templates or task.templates
        return templates if self.cfg.ensemble else templates[:1]

    def class_features(self) -> dict[str, torch.Tensor]:
        if self.cfg.sentences is not None:
            return {task.name: self.backbone.encode_text(
                self.backbone.tokenize(class_sentences(self.cfg.sentences, task)), normalize=True)
                for task in self.tasks}
        out = {}
        for task in self.tasks:
            per_template = []
            for template in self.templates_for(task):
                tokens = self.backbone.tokenize(task.prompts(template))
                per_template.append(F.normalize(self.backbone.encode_text(tokens), dim=-1))
            out[task.name] = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        return out


register_method(MethodPreset("zero-shot", "templates", "none", summary="hand-written templates, nothing trains"))
