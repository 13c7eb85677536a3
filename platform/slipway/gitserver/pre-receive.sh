#!/bin/sh
# Installed by Slipway into every app repository: a push to the app's deploy branch deploys
# the pushed commit, and a failed deploy rejects the push. The output shows as `remote:` lines.
exec "${SLIPWAY_PYTHON:-python3}" -m slipway.gitserver.hook "$@"
