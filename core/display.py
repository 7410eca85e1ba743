"""Table cells, one way everywhere (the CLI's tables, the admin page, the demo's targets): a
missing figure is ``-``, a float has fixed decimals, a win rate carries its CI.

>>> cell(None), cell(0.51234), cell(3), cell(0.000123, sig=True)
('-', '0.512', '3', '0.000123')
>>> interval(0.6, 0.5, 0.7, n=40)
'0.60 [0.50, 0.70]'
"""

from __future__ import annotations

__all__ = ["cell", "interval"]


def cell(v, digits: int = 3, *, sig: bool = False) -> str:
    """``-`` for ``None``; a float to ``digits`` decimals (``sig``: significant digits, 4);
    anything else as ``str``."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if sig else f"{v:.{digits}f}"
    return str(v)


def interval(rate: float | None, low: float | None, high: float | None, *, n: int = 1,
             digits: int = 2, sep: str = " ") -> str:
    """``rate [low, high]`` (``sep`` between them: a newline stacks the CI under the rate);
    ``-`` when there is no rate or no observation (``n`` 0)."""
    if rate is None or not n:
        return "-"
    return f"{rate:.{digits}f}{sep}[{low:.{digits}f}, {high:.{digits}f}]"
