"""`gitreg demo`: a guided tour on a throwaway registry (see tour.py).

- ``tour``       the narrated walk: set-up, train, register, list, compare, pull, validate
- ``serving``    promote by pull request, serve, hot-swap under load, roll back
- ``train``      the toy contextual bandit and its DQN/PPO torch policies (torch inside functions)
- ``narration``  the Narrator and the demo repositories' own Git identity
"""

from __future__ import annotations

from gitreg.cli.demo.tour import run_demo

__all__ = ["run_demo"]
