"""A stand-in for pkg_resources, seen by supervisord alone (it sits next to its launcher).

supervisor 4.2 imports the real pkg_resources only to resolve ``module:attribute`` factory specs;
the real one indexes every installed distribution on import, about 9 MB in every instance.
importlib resolves the same specs.
"""

from __future__ import annotations

import importlib
from typing import Any


class EntryPoint:
    def __init__(self, module: str, attrs: str) -> None:
        self.module, self.attrs = module, attrs

    @classmethod
    def parse(cls, src: str) -> EntryPoint:
        """``"name = package.module:attr.sub"``, as supervisor passes it."""
        _, _, spec = src.partition("=")
        module, _, attrs = spec.strip().partition(":")
        return cls(module.strip(), attrs.strip())

    def resolve(self) -> Any:
        target: Any = importlib.import_module(self.module)
        for name in filter(None, self.attrs.split(".")):
            target = getattr(target, name)
        return target
