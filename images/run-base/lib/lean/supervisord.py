"""supervisord started as a script from this directory, so the light pkg_resources.py next to it
is imported instead of the real one (Python puts a script's directory first on sys.path). The
programs supervisord starts are new processes: they never see this directory."""

import sys

from supervisor.supervisord import main

sys.exit(main())
