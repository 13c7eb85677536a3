"""The control plane on the host: supervisord running redis, nginx, the API process (with the
reconciler, collector and sleeper in it) and the worker, started and stopped by
``slipway server up|down``."""
