"""The scikit-learn parameter contract without depending on scikit-learn.

``get_params`` reads the constructor's keyword names and returns the values
stored under the same names; ``set_params`` sets them; ``__repr__`` shows the
ones that differ from the defaults. That is all ``sklearn.base.clone`` needs.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List

__all__ = ["ParamsMixin"]


class ParamsMixin:
    """get_params / set_params / repr from the signature of ``__init__``."""

    @classmethod
    def _param_names(cls) -> List[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "ParamsMixin":
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters are {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = value is default or value == default
            except Exception:       # arrays and other values without a plain ==
                same = False
            if not (same is True):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"
