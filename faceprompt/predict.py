"""Classify face crops with a backbone (zero-shot) or a trained run: per-task class probabilities."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from faceprompt.backbones import BACKBONES, Backbone, load_backbone
from faceprompt.checkpoint import load_prompts
from faceprompt.prompts import PromptModel, build_model
from faceprompt.tasks import get_tasks

# The crop the shipped model was trained on, and the better one on held-out photos through the demo's
# detector (benchmarks/bench_in_the_wild.py --crop box|aligned; see book/demo.md).
DEFAULT_CROP = "aligned"


# The prompts tuned on faceclip-tiny that ship beside its weights (configs/train_faceclip_tiny_tuned.yaml):
# what `predict`, `demo`, the app and `evaluate --manifest` use when no run is named.
SHIPPED_RUN = Path(__file__).resolve().parent / "pretrained" / "faceclip-tiny-tuned"


def default_backbone() -> str:
    """The embedded face model when it ships with the package, else the PE-shaped test tower."""
    return "faceclip-tiny" if "faceclip-tiny" in BACKBONES else "tiny-pe"


def default_run(backbone: str | Backbone | None = None, weights: str | None = None) -> Path | None:
    """The shipped tuned run for the embedded model with its own weights; None for any other backbone or
    weights, or where the package ships no such run (then the bare backbone answers, zero-shot)."""
    name = backbone.name if isinstance(backbone, Backbone) else (backbone or default_backbone())
    own_weights = weights is None if not isinstance(backbone, Backbone) else True
    if name == "faceclip-tiny" and own_weights and (SHIPPED_RUN / "prompts.safetensors").is_file():
        return SHIPPED_RUN
    return None


@dataclass
class TaskPrediction:
    label: str
    confidence: float
    probabilities: dict[str, float]

    @property
    def certainty(self) -> float:
        """How far the top probability is from chance towards certainty: (p - 1/K) / (1 - 1/K) for K classes,
        0 at chance and 1 at certainty, so a two-class and a nine-class label are judged alike (a top
        probability of 0.5 is chance for gender and a clear lead among nine age bins)."""
        k = len(self.probabilities)
        return self.confidence if k < 2 else (self.confidence - 1 / k) / (1 - 1 / k)


def compile_mode(compile: bool = False, static: bool = False) -> str:
    """The image path's ``Backbone.compile_image_path`` mode from the commands' ``--compile`` and ``--static``."""
    return "reduce-overhead" if static else "default" if compile else "off"


def static_batch_size(n: int) -> int:
    """The fixed batch shape ``n`` faces are padded to under CUDA graphs: the next power of two, so a video's
    changing face count replays a handful of captured graphs instead of capturing one per count."""
    return 1 << max(n - 1, 0).bit_length()


class FaceClassifier:
    """A prompt model in eval mode; all faces of a call go through one batched forward.

    ``compile``: the image path's ``torch.compile`` mode (``compile_mode``); under ``"reduce-overhead"`` (CUDA
    graphs, a GPU only) batches are padded to ``static_batch_size`` so every call meets a captured shape.
    """

    def __init__(self, model: PromptModel, compile: str = "off", run_dir: Path | None = None):
        self.model = model.eval()
        self.run_dir = run_dir  # the run whose prompts answer; None: zero-shot
        self.static_shapes = compile == "reduce-overhead"
        if compile != "off":
            model.backbone.compile_image_path(compile)

    @classmethod
    def load(cls, backbone: str | Backbone | None = None, run_dir: str | os.PathLike | None = None,
             weights: str | None = None, device: str = "cpu", tasks=None, compile: str = "off",
             zero_shot: bool = False) -> "FaceClassifier":
        """A trained run's prompts (``run_dir``; by default the run shipped with the embedded model, see
        ``default_run``), or the bare backbone's hand-written prompts with ``zero_shot=True``."""
        if run_dir is not None and zero_shot:
            raise ValueError(f"--zero-shot: the bare backbone answers, so a run ({run_dir}) has no use; give one")
        if run_dir is None and not zero_shot:
            run_dir = default_run(backbone, weights)
        if run_dir is not None:
            model = load_prompts(Path(run_dir), backbone=backbone, weights=weights, device=device, tasks=tasks)
            return cls(model, compile, Path(run_dir))
        if not isinstance(backbone, Backbone):
            backbone = load_backbone(backbone or default_backbone(), weights=weights, device=device)
        return cls(build_model("zero-shot", backbone, get_tasks(tasks)), compile)

    def describe(self) -> dict:
        """Which model answers: backbone, its weights, the method and where its prompts come from."""
        shipped = self.run_dir is not None and self.run_dir.resolve() == SHIPPED_RUN
        prompts = "zero-shot (hand-written templates)" if self.run_dir is None else (
            f"shipped: {SHIPPED_RUN.name}" if shipped else str(self.run_dir))
        return {"backbone": self.backbone.name, "weights": self.backbone.weights_id, "method": self.model.method,
                "prompts": prompts}

    def logits(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-task logits of a preprocessed batch (padded to a captured shape under static shapes)."""
        n = batch.shape[0]
        if self.static_shapes and static_batch_size(n) != n:
            pad = batch.new_zeros(static_batch_size(n) - n, *batch.shape[1:])
            return {task: v[:n] for task, v in self.model(torch.cat([batch, pad])).logits.items()}
        return self.model(batch).logits

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    @torch.no_grad()
    def predict(self, faces: list[Image.Image]) -> list[dict[str, TaskPrediction]]:
        """One dict per face: task -> TaskPrediction."""
        if not faces:
            return []
        batch = torch.stack([self.backbone.preprocess(f.convert("RGB")) for f in faces]).to(self.backbone.device)
        logits = self.logits(batch)
        results: list[dict[str, TaskPrediction]] = [{} for _ in faces]
        for task in self.model.tasks:
            probs = logits[task.name].float().softmax(dim=-1).cpu()
            for i, row in enumerate(probs):
                best = int(row.argmax())
                results[i][task.name] = TaskPrediction(
                    task.classes[best], float(row[best]), {c: float(p) for c, p in zip(task.classes, row)})
        return results

    def crop_image(self, image: Image.Image, crop: str = DEFAULT_CROP):
        """A single-face image cropped as training data is (``align.face_crop``): the ``FaceCrop`` says
        which crop was really made (an aligned crop falls back to the whole image without landmarks) and why."""
        from faceprompt.align import face_crop

        return face_crop(image.convert("RGB"), None, self.backbone.image_size, crop)

    def predict_image(self, image: Image.Image, crop: str = DEFAULT_CROP) -> dict[str, TaskPrediction]:
        """Predictions for one single-face image, cropped as training data is (``crop_image``)."""
        return self.predict([self.crop_image(image, crop).image])[0]

    def predict_file(self, path: str | os.PathLike, crop: str = DEFAULT_CROP) -> dict[str, TaskPrediction]:
        """Predictions for one face image file; one too small to show a face is refused, naming the file."""
        from faceprompt.data.images import load_face

        return self.predict_image(load_face(path), crop)


def as_json(prediction: dict[str, TaskPrediction]) -> dict:
    return {task: {"label": p.label, "confidence": round(p.confidence, 4), "certainty": round(p.certainty, 4),
                   "probabilities": {c: round(v, 4) for c, v in p.probabilities.items()}}
            for task, p in prediction.items()}
