"""Number formatting shared by the report's modules."""
from __future__ import annotations


def num(v, digits=0) -> str:
    """A number with thousands separators ("–" for None)."""
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fmt_summary(s: dict | None, digits=0) -> str:
    """'median [min–max]' of a summary dict; one value alone when all rounds agree or n == 1."""
    if not s or s.get("median") is None:
        return "–"
    med = num(s["median"], digits)
    if s.get("n", 1) <= 1 or s["min"] == s["max"]:
        return med
    return f"{med} [{num(s['min'], digits)}–{num(s['max'], digits)}]"


