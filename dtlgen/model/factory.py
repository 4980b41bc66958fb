"""Resolving a MODEL argument: a zoo name or `path/to/file.py:factory`, called and its result checked.

Everything a user's file or factory can do wrong (a missing file, a syntax error, a factory that
raises or exits, returns the wrong things) becomes one `ModelSpecError` naming the file, the
factory and the fix. This module neither traces the module nor resolves the split (`fx_import`
and `resolve_split` do); torch is imported only once a MODEL is resolved.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dtlgen.errors import ModelSpecError
from dtlgen.model.ir import check_input_shape
from dtlgen.errors import brief, reason

_FORM = "(module, input_shape) or (module, input_shape, split)"


@dataclass(frozen=True)
class FactoryResult:
    """What a factory gave, checked; `origin` names it in later messages ("factory `f` in net.py")."""

    module: Any  # torch.nn.Module (kept untyped so that this module loads without torch)
    input_shape: tuple[int, ...]
    split: Any
    name: str
    origin: str


def call_factory(spec: str) -> FactoryResult:
    """Resolve MODEL, call its factory once and check the result's types (not yet that it runs)."""
    from dtlgen.model.zoo import ZOO, zoo_names  # torch, once a MODEL is resolved

    if spec in ZOO:
        factory, name, origin = ZOO[spec], spec, f"zoo model '{spec}'"
    else:
        path, name = _split_spec(spec, zoo_names())
        origin = f"factory `{name}` in {path}"
        factory = _factory_from_file(path, name, spec)
    result = _call(factory, origin)
    return _check_result(result, name, origin)


def _split_spec(spec: str, zoo_names: list[str]) -> tuple[Path, str]:
    if ":" not in spec or spec.startswith(":"):
        if spec.endswith(".py") or Path(spec).is_file():
            raise ModelSpecError(f"model '{spec}': name the factory function too, as '{spec}:factory'")
        raise ModelSpecError(f"model '{spec}' is neither a zoo model ({', '.join(zoo_names)}) "
                             "nor 'path/to/file.py:factory'")
    path_text, factory_name = spec.rsplit(":", 1)
    if not factory_name.isidentifier():
        raise ModelSpecError(f"model '{spec}': {brief(factory_name)} after ':' is not a function name; "
                             "give path/to/file.py:factory")
    return Path(path_text), factory_name


def _factory_from_file(path: Path, factory_name: str, spec: str) -> Callable[[], Any]:
    problem = _file_problem(path)
    if problem:
        raise ModelSpecError(f"model '{spec}': '{path}' is not a Python file ({problem}); give path/to/file.py:factory")
    user_module = _exec_file(path)
    factory = getattr(user_module, factory_name, None)
    if factory is None:
        defined = sorted(n for n, v in vars(user_module).items()
                         if inspect.isfunction(v) and v.__module__ == user_module.__name__ and not n.startswith("_"))
        listed = f"; functions defined there: {', '.join(defined)}" if defined else ""
        raise ModelSpecError(f"model '{spec}': '{path}' has no function '{factory_name}'{listed}")
    if not callable(factory) or inspect.isclass(factory):
        raise ModelSpecError(f"model '{spec}': '{factory_name}' in '{path}' is a {type(factory).__name__}, not a "
                             f"function; point MODEL at a function that returns {_FORM}")
    return factory


def _file_problem(path: Path) -> str | None:
    """Why `path` is not a Python file to load, or None."""
    try:
        if not path.exists():
            return "no such file"
        if path.is_dir():
            return "it is a directory"
        if not path.is_file():
            return "it is not a regular file"
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        return f"it cannot be looked up: {reason(exc)}"
    if path.suffix != ".py":
        return "its name does not end in .py"
    return None


def _exec_file(path: Path) -> ModuleType:
    """Run the user's file as a module of its own (its `if __name__ == "__main__":` block does not run)."""
    module_name = f"dtlgen_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ModelSpecError(f"'{path}' cannot be loaded as a Python module; give path/to/file.py:factory")
    user_module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = user_module  # lets dataclasses/pickle inside the file resolve their module
    try:
        loader_spec.loader.exec_module(user_module)
    except (Exception, SystemExit) as exc:  # KeyboardInterrupt stays the user's
        sys.modules.pop(module_name, None)
        raise ModelSpecError(f"importing '{path}' raised {reason(exc)}; fix the file") from exc
    return user_module


def _call(factory: Callable[[], Any], origin: str) -> Any:
    try:
        required = [p.name for p in inspect.signature(factory).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):  # builtins and some callables have no signature: just call them
        required = []
    if required:
        raise ModelSpecError(f"{origin} needs arguments ({', '.join(required)}); a factory takes none: wrap it, "
                             f"e.g. def build(): return {getattr(factory, '__name__', 'factory')}(...)")
    try:
        return factory()
    except (Exception, SystemExit) as exc:  # SystemExit: a factory must not end the process; Ctrl-C still does
        raise ModelSpecError(f"{origin} raised {reason(exc)}; fix the factory") from exc


def _check_result(result: Any, name: str, origin: str) -> FactoryResult:
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        got = (f"a tuple of {len(result)} values" if isinstance(result, tuple)
               else f"{brief(result)} (a {type(result).__name__})")
        raise ModelSpecError(f"{origin} must return {_FORM}; it returned {got}")
    module, input_shape = result[0], result[1]
    from torch import nn

    if not isinstance(module, nn.Module):
        hint = (f"; it returned the class: return an instance, e.g. {module.__name__}(...)"
                if inspect.isclass(module) and issubclass(module, nn.Module) else "")
        raise ModelSpecError(f"{origin} returned {brief(module)} as the module; the first value must be a "
                             f"torch.nn.Module instance{hint}")
    split = result[2] if len(result) == 3 else None
    return FactoryResult(module, check_input_shape(input_shape, origin), split, name, origin)
