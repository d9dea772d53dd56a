"""The stage lifecycle in Git: promote, deploy, rollback, history, status and check.

Stages live in ``models.yaml``. A change is a commit on a new branch pushed for a pull request
(review is the approval) or, with ``direct``, a commit on the current branch. Branch commits
are made with a private index (the user's working tree, index and HEAD are never touched).
Rollback is ``git revert`` of the commit that last moved the stage (computed as a three-way
merge of models.yaml, without a working tree). The history of every stage is read back from
``git log -- models.yaml`` in two git calls.

Direct changes are crash-safe (see :func:`commit_manifest`): the commit comes first, made with a
private index and a compare-and-swap of the branch; the working tree follows under a journal in
``.git/gitreg/manifest-journal/`` that `gitreg doctor --fix` finishes if the process died.
"""

from gitreg.journal import MANIFEST_CRASH_POINTS, commit_manifest, sync_manifest, uncommit_manifest
from gitreg.lifecycle.changes import TRAILER_KEYS, ChangeResult, branch_base
from gitreg.lifecycle.check import CheckReport, Problem, bundle_format, check, policy_problems
from gitreg.lifecycle.history import StageChange, StageValue, history, manifest_history, stage_value
from gitreg.lifecycle.promote import PROMOTE_STAGES, promote
from gitreg.lifecycle.rollback import ROLLBACK_STAGES, rollback
from gitreg.lifecycle.status import ModelStatus, StageState, status

__all__ = [
    "MANIFEST_CRASH_POINTS",
    "PROMOTE_STAGES",
    "ROLLBACK_STAGES",
    "TRAILER_KEYS",
    "ChangeResult",
    "CheckReport",
    "ModelStatus",
    "Problem",
    "StageChange",
    "StageState",
    "StageValue",
    "branch_base",
    "bundle_format",
    "check",
    "commit_manifest",
    "history",
    "manifest_history",
    "policy_problems",
    "promote",
    "rollback",
    "stage_value",
    "status",
    "sync_manifest",
    "uncommit_manifest",
]
