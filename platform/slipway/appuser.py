"""mop: the one user every container runs as, and the owner of every app's files on the host.

Its uid and gid are one number, the setting ``SLIPWAY_APP_UID`` (61000 unless set): a number of
the platform's own, held by no account of the host (``slipway server up`` checks that, see
``host/accounts.py``), so no person or service on the host owns what apps write, and no app owns
what they write. The images are built with the same number (``runtime/images.py``).

It is one value for the whole process, read from the settings when this module is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from slipway.config import get_settings

MOP_UID: int = get_settings().app_uid
MOP_GID: int = MOP_UID
MOP_USER = f"{MOP_UID}:{MOP_GID}"  # Docker's ``user`` of every container


def made_for_another_uid(path: Path) -> bool:
    """True when ``path`` (a volume's root) belongs to neither mop nor this process: it was made
    for an earlier app uid, before an upgrade or a change of ``SLIPWAY_APP_UID``."""
    return path.stat().st_uid not in (MOP_UID, os.geteuid())
