"""One generic name registry, used by every table of named parts (strategies, codecs, backends, ...).

A feature declares its registry once (``CODECS = Registry("codec", ...)``) and each implementation
registers itself in its own file, so adding a codec, a strategy or a backend is one new file. A
registry finds its entries lazily, the first time a name is looked up or listed:

1. the built-in modules it was told about (``modules=``, imported in order), then every other
   module of its feature package (``package=``), so a new built-in is one new file in that package;
   a run imports only the features it uses and ``fedloom --help`` imports none of them;
2. third-party packages, through Python entry points in the group ``fedloom.<kind>s`` (an entry
   point's value is a module, imported so that it registers itself, or ``module:object``, registered
   under the entry point's name).

Every registry also takes your own code: a name ``"package.module:factory"`` (a colon) is imported
on lookup (:func:`load_object`), with the current directory importable, so ``--strategy
my_strategy:MyFedAvg`` works from the folder holding ``my_strategy.py`` with no ``PYTHONPATH``.

Lookups of an unknown name raise :class:`~fedloom.errors.ConfigError` naming every valid choice.
Help texts and error messages iterate over the registry, so they never drift from what exists.

Example:
    >>> CODECS: Registry[type] = Registry("codec")
    >>> @CODECS.register("identity", help="Send the update as is.")
    ... class Identity: ...
    >>> CODECS.get("identity").__name__
    'Identity'
    >>> CODECS.get("zip")
    Traceback (most recent call last):
        ...
    fedloom.errors.ConfigError: unknown codec 'zip'; choose one of: identity, or your own 'package.module:factory'
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from fedloom.errors import ConfigError

__all__ = ["Registry", "Entry", "load_plugins", "load_object", "is_import_path", "add_import_root",
           "call_with_accepted"]

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the object and a one-line help text."""

    name: str
    obj: T
    help: str = ""


@dataclass(frozen=True)
class _Lazy:
    """A registered ``"module:attribute"`` not imported yet (see :meth:`Registry.register_lazy`)."""

    target: str

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    """A table of named implementations of one extension point.

    Args:
        kind: What the entries are, singular (``"codec"``): used in messages and as the entry-point
            group ``fedloom.<kind>s`` (spaces become underscores).
        modules: Built-in modules that register entries, imported in this order on first use.
        package: A package whose other public modules (names not starting with ``_``) are imported
            after ``modules``, so that a file added to it registers itself with no list to update.
        plural: The plural used for the entry-point group, if not ``kind + "s"``.
    """

    def __init__(self, kind: str, *, modules: Sequence[str] = (), package: str | None = None,
                 plural: str | None = None) -> None:
        self.kind = kind
        self.group = "fedloom." + (plural or kind + "s").replace(" ", "_").replace("-", "_")
        self._modules = list(modules)
        self._package = package
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False

    # -- registration ------------------------------------------------------------------------
    @overload
    def register(self, name: str, obj: None = None, *, help: str = "") -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T, *, help: str = "") -> T: ...

    def register(self, name: str, obj: T | None = None, *, help: str = "") -> Any:  # noqa: A002
        """Register ``obj`` under ``name`` (or use as a decorator). Re-registering a name replaces it,
        with a warning when the object differs (a plugin overriding a built-in)."""
        if not name or not isinstance(name, str):
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(target: T) -> T:
            old = self._entries.get(name)
            if old is not None and old.obj is not target and not isinstance(old.obj, _Lazy):
                log.warning("%s %r registered again; the new one replaces %r", self.kind, name, old.obj)
            text = help or _first_line(getattr(target, "__doc__", None))
            self._entries[name] = Entry(name, target, text)
            return target

        return add if obj is None else add(obj)

    def register_lazy(self, name: str, target: str, *, help: str = "") -> None:  # noqa: A002
        """Register ``"module:attribute"`` under ``name`` without importing it: listing the names (for
        ``--help``) stays cheap, and the module loads on the first :meth:`get`. For built-ins whose
        module is heavy to import (a backend that needs torch.func)."""
        if ":" not in target:
            raise ConfigError(f"a lazy {self.kind} target must be 'module:attribute', got {target!r}")
        self._entries.setdefault(name, Entry(name, _Lazy(target), help))  # type: ignore[arg-type]

    # -- lookup ------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self._modules:
                importlib.import_module(module)
            if self._package is not None:
                for module in _package_modules(self._package):
                    importlib.import_module(module)
            _load_entry_points(self)
            self._loaded = True
        finally:
            self._loading = False

    def get(self, name: str) -> T:
        """The object registered as ``name``, or imported from ``"package.module:factory"``
        (:func:`load_object`); :class:`ConfigError` listing the choices otherwise."""
        entry = self._entries.get(name)
        if entry is None:
            self._load()
            entry = self._entries.get(name)
        if entry is None and is_import_path(name):
            return load_object(name, self.kind)  # type: ignore[no-any-return]
        if entry is None:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {self.choices()}, "
                              "or your own 'package.module:factory'")
        if isinstance(entry.obj, _Lazy):
            obj = entry.obj.load()  # importing the module may register the real object itself
            current = self._entries[name]
            entry = current if not isinstance(current.obj, _Lazy) else Entry(name, obj, entry.help)
            self._entries[name] = entry
        return entry.obj

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` of ``name`` (object and help text)."""
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name: built-ins in the order of their ``modules`` (whatever imported them
        first), then the rest in registration order."""
        self._load()
        rank = {module: i for i, module in enumerate(self._modules)}

        def position(item: tuple[int, str]) -> tuple[int, int]:
            index, name = item
            obj = self._entries[name].obj
            module = obj.target.partition(":")[0] if isinstance(obj, _Lazy) else getattr(obj, "__module__", None)
            return rank.get(module, len(rank)), index  # type: ignore[arg-type]

        return [name for _, name in sorted(enumerate(self._entries), key=position)]

    def choices(self) -> str:
        """``"a, b, c"``: the names, for help texts and error messages."""
        return ", ".join(self.names())

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered, or is a ``"package.module:factory"`` path (imported on :meth:`get`)."""
        if name in self._entries or (isinstance(name, str) and is_import_path(name)):
            return True
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} loaded)"


def _package_modules(package: str) -> list[str]:
    """The public modules of ``package`` (not subpackages, not ``_private`` ones), sorted by name."""
    import pkgutil

    pkg = importlib.import_module(package)
    return [f"{package}.{info.name}" for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
            if not info.ispkg and not info.name.startswith("_")]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0].strip()


def _load_entry_points(registry: Registry[Any]) -> None:
    """Import what third-party packages declare under ``registry.group``."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=registry.group):
        try:
            if ":" in ep.value:  # an object: registered by name, imported on first use
                registry.register_lazy(ep.name, ep.value)
            else:  # a module that registers itself
                importlib.import_module(ep.value)
        except Exception as exc:  # a broken plugin must say so, not take the run down silently
            raise ConfigError(f"plugin {ep.value!r} ({registry.group} entry point {ep.name!r}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc


def load_plugins(modules: Sequence[str]) -> None:
    """Import plugin modules by name (``--plugin``, ``plugins = [...]`` in TOML) so they register."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"cannot import plugin {module!r}: {exc}") from exc


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads as ``"package.module:attribute"`` (your own code, not a registered name)."""
    module, sep, attr = name.partition(":")
    return bool(sep and attr and module) and all(part.isidentifier() for part in [*module.split("."),
                                                                                   *attr.split(".")])


_ROOTS: list[str] = []


def add_import_root(folder: str | os.PathLike[str]) -> None:
    """Make ``folder`` importable (first on ``sys.path``) for :func:`load_object`: e.g. the folder of
    a config file, so that its ``module:factory`` names load wherever fedloom is started."""
    path = os.path.abspath(folder)
    if path not in _ROOTS:
        _ROOTS.append(path)
    if path not in sys.path:
        sys.path.insert(0, path)


def load_object(spec: str, kind: str = "object") -> Any:
    """Import ``"package.module:attribute"`` (``attribute`` may be dotted: ``"mod:Class.method"``).

    The current directory is importable (put first on ``sys.path``, as ``python -m`` does), as is
    every folder given to :func:`add_import_root`, so a ``client_app.py`` next to where you start
    fedloom loads as ``client_app:client_fn`` without ``PYTHONPATH``.

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported (with the reason and where
            fedloom looked) or has no such attribute.

    Example:
        >>> load_object("math:sqrt")(9.0)
        3.0
    """
    module_name, _, attr = spec.partition(":")
    if not is_import_path(spec):
        raise ConfigError(f"a {kind} given as code must be 'package.module:factory', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        where = ", ".join(dict.fromkeys([cwd, *_ROOTS]))
        raise ConfigError(f"cannot load {kind} {spec!r}: {type(exc).__name__}: {exc} (looked in {where} and "
                          "the installed packages; start fedloom in the folder that holds the module)") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"cannot load {kind} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def call_with_accepted(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` passing only the keyword arguments its signature accepts (all of
    them when it takes ``**kwargs``): how factories of your own code receive what fedloom offers."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: offer everything
        return fn(*args, **kwargs)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)
