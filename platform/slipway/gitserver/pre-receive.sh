#!/bin/sh
# Installed by Slipway into every app repository: a push to the app's deploy branch deploys
# the pushed commit, and a failed deploy rejects the push. The output shows as `remote:` lines.
# The API hands over the interpreter and the hook (gitserver/handoff.py); the hook needs only the
# standard library, so it starts isolated (-I) and without site-packages (-S): a push waits for it.
if [ -z "${SLIPWAY_GIT_HOOK:-}" ]; then
    echo " !     Push through the Slipway API (http://<api>/git/<app>.git) to deploy."
    exit 1
fi
exec "${SLIPWAY_PYTHON:-python3}" -I -S "$SLIPWAY_GIT_HOOK" "$@"
