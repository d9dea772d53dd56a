"""The bundle store: bundle files (:mod:`.bundle`), DVC (:mod:`.dvc`, the only module that
imports DVC) and its S3 specifics (:mod:`.s3`). Importing this package imports no DVC."""

from gitreg.store.bundle import (
    CHUNK,
    MAX_POINTER_BYTES,
    METADATA_FILE,
    POINTER_SUFFIX,
    POLICY_FILE,
    POLICY_FILES,
    SAFETENSORS_FILE,
    BundleFile,
    Pointer,
    Progress,
    copy_bundle,
    copy_verified,
    md5_file,
    parse_pointer,
    policy_file,
    scan_bundle,
)
from gitreg.store.dvc import DEFAULT_REMOTE_NAME, DvcStore, RemovedObjects

__all__ = [
    "CHUNK",
    "DEFAULT_REMOTE_NAME",
    "MAX_POINTER_BYTES",
    "METADATA_FILE",
    "POINTER_SUFFIX",
    "POLICY_FILE",
    "POLICY_FILES",
    "SAFETENSORS_FILE",
    "BundleFile",
    "DvcStore",
    "Pointer",
    "Progress",
    "RemovedObjects",
    "copy_bundle",
    "copy_verified",
    "md5_file",
    "parse_pointer",
    "policy_file",
    "scan_bundle",
]
