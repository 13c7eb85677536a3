"""The control plane on the host: supervisord running redis, the API, the worker, the reconciler
and nginx, started and stopped by ``slipway server up|down``."""
