"""The demonstrator: detect every face in a photo or video and label it with gender, age and emotion.

``pipeline`` (FacePipeline, FrameResult, FaceResult, draw), ``screening`` (which boxes are no face),
``layout`` (labels placed clear of faces and of each other), ``media`` (images, folders, videos, webcams),
``app`` (the ipywidgets app, ``build_app()``, and its Voila page). The `faceprompt demo` command's
arguments are parsed in ``faceprompt.commands.demo``, beside every other command's.
"""
from faceprompt.demo.pipeline import FacePipeline, FaceResult, FrameResult, draw

__all__ = ["FacePipeline", "FaceResult", "FrameResult", "draw"]
