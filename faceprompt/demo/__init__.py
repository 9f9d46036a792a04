"""The demonstrator: detect every face in a photo or video and label it with gender, age and emotion.

``pipeline`` (FacePipeline, FrameResult, FaceResult, draw), ``media`` (images, folders, videos, webcams),
``cli`` (`faceprompt demo`), ``app`` (the ipywidgets app, ``build_app()``, and its Voila page).
"""
from faceprompt.demo.pipeline import FacePipeline, FaceResult, FrameResult, draw

__all__ = ["FacePipeline", "FaceResult", "FrameResult", "draw"]
