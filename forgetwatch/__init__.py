"""forgetwatch: what did this fine-tune gain, and what did it forget?

One import name. The repository keeps ``collectors/``, ``evals/`` and
``dashboard/`` at its top level; an install maps them into this package
(``forgetwatch.collectors`` and so on, through ``package-dir`` in
pyproject.toml), so site-packages holds ``forgetwatch`` alone.

When Python imports this package straight from a checkout instead (``python -m``
or pytest run from the repository root put the root first on ``sys.path``), the
three folders sit beside this one rather than inside it. The checkout's root is
then added to ``__path__``, so ``forgetwatch.collectors`` resolves to the same
files an install holds. An installed package (a wheel, or the strict editable
link tree) has the folders inside and is left as it is. docs/architecture.md
describes the floors these packages form.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"

_HERE = _Path(__file__).parent  # not resolved: an editable link tree's files are symlinks
_CHECKOUT = _HERE.parent
if not (_HERE / "collectors").is_dir() and (_CHECKOUT / "collectors" / "__init__.py").is_file():
    __path__.append(str(_CHECKOUT))
