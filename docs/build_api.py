"""Build the API reference from the docstrings with pdoc: ``python docs/build_api.py OUT`` (``make docs``).

Documents every importable module of fedloom (modules needing an optional extra that is not
installed are left out, with a note), and exits non-zero on any pdoc warning (an annotation or an
``__all__`` entry that does not resolve), so a broken reference fails ``make docs`` and the test
that runs it (tests/docs/test_api_reference.py).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import warnings
from pathlib import Path


def modules() -> list[str]:
    """Every public, importable module of fedloom (generated protobuf code excluded)."""
    import fedloom

    names = ["fedloom"]
    for info in pkgutil.walk_packages(fedloom.__path__, "fedloom."):
        name = info.name
        if name.startswith("fedloom.net.proto") or name.endswith("__main__") or any(p.startswith("_") for p in name.split(".")):
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional extra (ray, tenseal, opacus) is not installed
            print(f"note: {name} left out: {exc}", file=sys.stderr)
            continue
        parent, _, leaf = name.rpartition(".")
        if not isinstance(getattr(sys.modules[parent], leaf, None), type(sys)):
            print(f"note: {name} is documented through {parent}, where {leaf!r} names what it exports",
                  file=sys.stderr)
            continue
        names.append(name)
    return names


def resolve_lazy_exports(names: list[str]) -> None:
    """Load the PEP 562 lazy exports (names in ``__all__`` a module's ``__getattr__`` provides) so that
    pdoc, which reads module dictionaries, sees them as the objects they are."""
    for name in names:
        module = sys.modules[name]
        for attr in getattr(module, "__all__", []):
            if attr not in vars(module):
                setattr(module, attr, getattr(module, attr))


def main(out: str) -> int:
    import pdoc

    names = modules()
    resolve_lazy_exports(names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*names, output_directory=Path(out))
    problems = [str(w.message) for w in caught if not _namedtuple_annotation(str(w.message))]
    for text in problems:
        print(f"warning: {text}", file=sys.stderr)
    print(f"API reference of {len(names)} modules in {out}/index.html")
    return 1 if problems else 0


_ANNOTATION = re.compile(r"Error parsing type annotation .* for ([\w.]+)\.__init__\.")


def _namedtuple_annotation(message: str) -> bool:
    """pdoc cannot evaluate the postponed annotations of a ``NamedTuple``'s generated ``__init__`` (it
    looks them up in the namespace typing made the method in): not a broken reference when the class
    is a NamedTuple whose own module defines the name (the annotations resolve there, checked by mypy)."""
    match = _ANNOTATION.search(message)
    if match is None:
        return False
    module, _, name = match.group(1).rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/api"))
