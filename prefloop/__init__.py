"""prefloop: turn preferences into better language models.

The ``prefloop`` command (:mod:`prefloop.cli`) and the loop that wires :mod:`store`,
:mod:`annotate_app`, :mod:`judge` and :mod:`training` together.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
