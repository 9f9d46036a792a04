"""Face data from download to batch: a published dataset -> face crops and one manifest -> torch datasets.

===============  ==========================================================================================
manifest         the manifest: one row per face image, one column per label, a missing label left empty
adapters         one adapter per dataset: its published layout -> manifest rows and skips; their registry
prepare          ``faceprompt prepare``: a downloaded dataset -> face crops, stored splits and one manifest
splits           seeded, stored train/val/test splits that keep each identity in one split
images           robust image loading: any file a dataset ships becomes an upright 8-bit RGB image
dataset          torch datasets over manifests: images (or cached features) with one label per task
synthetic_faces  procedurally drawn labelled faces: the offline dataset every pipeline can run on
===============  ==========================================================================================
"""
from faceprompt.data.manifest import MANIFEST_COLUMNS, read_manifest, write_manifest

__all__ = ["MANIFEST_COLUMNS", "read_manifest", "write_manifest"]
