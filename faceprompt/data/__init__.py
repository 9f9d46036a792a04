"""Manifests of face images with (possibly missing) labels, and the datasets built on them."""
from faceprompt.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest

__all__ = ["MANIFEST_COLUMNS", "read_manifest", "write_manifest"]
