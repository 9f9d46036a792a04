"""Make the built book open offline: serve MathJax from the book itself when a local copy exists.

Sphinx loads MathJax from a CDN by default, so equations would stay raw TeX on a machine without
network. When a MathJax 2 distribution is installed (the ``jupyter-server-mathjax`` package, or
Debian's ``libjs-mathjax``), it is copied into ``_build/html/_static/mathjax`` and every page loads
it from there; otherwise the CDN default is kept (pages still open, equations show as TeX).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
CONFIG = "TeX-AMS-MML_HTMLorMML-full"  # the combined config every MathJax 2 copy ships


def local_mathjax() -> Path | None:
    """A folder holding MathJax.js (version 2), or None."""
    candidates = []
    try:
        import jupyter_server_mathjax

        candidates.append(Path(jupyter_server_mathjax.__file__).parent / "static")
    except ImportError:
        pass
    candidates.append(Path("/usr/share/javascript/mathjax"))
    return next((c for c in candidates if (c / "MathJax.js").is_file()), None)


def _configure(app, config) -> None:
    source = local_mathjax()
    app.env_mathjax_source = source  # type: ignore[attr-defined]
    if source is None:
        logger.info("offline_assets: no local MathJax; equations load MathJax from its CDN")
        return
    config.mathjax_path = f"mathjax/MathJax.js?config={CONFIG}"
    config.mathjax3_config = None
    # MyST-NB marks page sections "tex2jax_ignore" and math spans "math": process only those.
    config.mathjax2_config = {
        "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                    "processRefs": False, "processEnvironments": False,
                    "ignoreClass": "tex2jax_ignore|mathjax_ignore",
                    "processClass": "tex2jax_process|mathjax_process|math|output_area"},
        "messageStyle": "none",
        # jupyter-server-mathjax ships the STIX-Web fonts only; Debian's copy has them too.
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    }


def _drop_v3_config(app, config) -> None:
    # MyST-NB adds a MathJax 3 configuration (window.MathJax = ...), which MathJax 2 would read as its own.
    if getattr(app, "env_mathjax_source", None) is not None:
        config.mathjax3_config = None


def _copy(app, exception) -> None:
    source = getattr(app, "env_mathjax_source", None)
    if exception is not None or source is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app):
    app.connect("config-inited", _configure)
    app.connect("config-inited", _drop_v3_config, priority=900)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
