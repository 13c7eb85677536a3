"""Slipway's benchmark suite: ``python -m bench.run`` (``make bench``) writes bench/RESULTS.md."""
