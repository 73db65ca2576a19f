"""Imported last by the forkserver (``supervisor.host.PRELOAD``): freezes the heap it preloaded.

Every role is forked from the forkserver and shares its pages (the roles' modules, pandas,
CatBoost: ~94 000 objects the collector tracks) until it writes to them. A full collection in a
role writes to every object it scans, so each page holding one became the role's own: ~25-30 MB
of USS per role, in steps, over a long run (issue 19's soak). ``gc.freeze()`` moves them to the
permanent generation that no collection scans (the recipe of the ``gc`` module's documentation for
a process that forks without exec). Reference counts still copy the pages a role really uses.
"""

from __future__ import annotations

import gc

gc.collect()
gc.freeze()
