"""Reading a date column and continuing it into the forecast horizon.

Dates are parsed with the standard library: ``--date-format`` if given, else
ISO 8601 (``2013-03-01``, ``2013-03-01T09:30``), ``2013-03`` (monthly),
quarters (``2013Q1``, ``2013-Q1``, ``2013 Q1``, ``Q1 2013``: strptime has no
code for them; a quarter is read as its first month and the forecast is
written in the file's own style) or a plain number (a year or any numeric
time index).

The step to the next date is inferred from the history:

- numbers: the most common difference, rounded to a power of ten far above
  the values' float rounding (a float index 1600000000.1, 1600000000.2, ...
  steps by 0.1, not 0.0999999);
- each date in a later month than the one before, at one time of day, and at
  least 90% of them on one day D of the month (or the last day of a month
  shorter than D), or on the month's last or first weekday: months (monthly,
  quarterly, yearly data); month ends are D = 31 (2020-01-31, 2020-02-29,
  2020-03-31), and the forecast keeps to the anchor;
- only weekdays, mostly one day apart and with weekend gaps (trading days):
  business days;
  exchange holidays are not known, so a forecast date may fall on one;
- otherwise the most common gap in days (on the local calendar for dates with
  UTC offsets when that makes it whole days: a clock change makes one day 23
  or 25 hours).

A tie between gaps goes to the shortest.

:func:`gap_note` says when the dates are not evenly spaced by that step
(missing months, a skipped day): a recurrent model reads rows as evenly
spaced, so a gap is either missing data to fill or a file to resample.
Business days are not checked, as exchange holidays are not known.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections import Counter
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError

__all__ = ["parse_dates", "DateStep", "infer_step", "check_order", "line_numbers", "gap_note", "step_words", "fits",
           "quarter_style", "valid_quarter_style", "offset_note"]

_FALLBACK_FORMATS = ("%Y-%m",)
# a quarter: 2013Q1, 2013-Q1, 2013 Q1, 2013/q1, Q1 2013, Q1-2013
_QUARTER = re.compile(r"(?P<y1>\d{4}) ?[-/ ]? ?[Qq](?P<q1>[1-4])|[Qq](?P<q2>[1-4]) ?[-/ ]? ?(?P<y2>\d{4})")
_QUARTER_STYLE = re.compile(r"\{year\} ?[-/ ]? ?[Qq]\{q\}|[Qq]\{q\} ?[-/ ]? ?\{year\}")


def _quarter(text: str) -> Optional[dt.datetime]:
    """``2013Q2`` (and the other styles of ``_QUARTER``) as the quarter's first day, 2013-04-01; else None."""
    m = _QUARTER.fullmatch(text)
    if m is None:
        return None
    year, q = (m["y1"], m["q1"]) if m["y1"] else (m["y2"], m["q2"])
    return dt.datetime(int(year), 3 * int(q) - 2, 1)


def quarter_style(text: str) -> Optional[str]:
    """The style of a quarter date as a template: ``2013-Q1`` -> ``{year}-Q{q}``; None if not a quarter."""
    m = _QUARTER.fullmatch(text)
    if m is None:
        return None
    y, q = ("y1", "q1") if m["y1"] else ("y2", "q2")
    spans = sorted([(m.span(y), "{year}"), (m.span(q), "{q}")], reverse=True)
    for (a, b), field in spans:                     # the later span first: the earlier one's offsets hold
        text = text[:a] + field + text[b:]
    return text


def valid_quarter_style(style) -> bool:
    """Whether ``style`` is a template :func:`quarter_style` makes (a model file's is checked with this)."""
    return isinstance(style, str) and _QUARTER_STYLE.fullmatch(style) is not None


def _parse_one(text: str, fmt: Optional[str]):
    if fmt is not None:
        return dt.datetime.strptime(text, fmt)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    for f in _FALLBACK_FORMATS:
        try:
            return dt.datetime.strptime(text, f)
        except ValueError:
            pass
    quarter = _quarter(text)
    if quarter is None:
        raise ValueError(text)
    return quarter


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def line_numbers(first_line, n: int) -> np.ndarray:
    """The file line of each of n values: ``first_line`` is the line of value 0 (consecutive lines), or
    a sequence of one line number per value (a CSV file with blank or multi-line records)."""
    if np.ndim(first_line) == 0:
        return np.arange(int(first_line), int(first_line) + n)        # (n,)
    lines = np.asarray(first_line, dtype=np.int64)                    # (n,)
    if lines.shape != (n,):
        raise ValueError(f"lines: expected one line number per value ({n}), got shape {lines.shape}")
    return lines


def parse_dates(values: Sequence[str], column: str, date_format: Optional[str] = None,
                first_line=2) -> Tuple[list, str]:
    """Parse every value; returns (dates, kind) with kind "number" or "datetime".

    Errors name the column and the file line (``first_line`` is the line of value 0,
    or a sequence of one line per value, see :func:`line_numbers`).
    """
    values = [v.strip() for v in values]
    lines = line_numbers(first_line, len(values))
    for i, v in enumerate(values):
        if not v:
            raise DataError(f"column {column!r} line {lines[i]}: the date is missing; fill it in or remove the row")
    if date_format is None and _number(values[0]) is not None:       # a numeric time index (years, steps)
        nums = [_number(v) for v in values]
        for i, x in enumerate(nums):
            if i == 0 and not math.isfinite(x):
                raise DataError(f"column {column!r} line {lines[0]}: {values[0]!r} is not a date or a finite number; "
                                "fix it or remove the row")
            if x is None or not math.isfinite(x):
                raise DataError(f"column {column!r} line {lines[i]}: {values[i]!r} is not a number like the dates "
                                f"before it ({values[0]!r} at line {lines[0]}); fix it or remove the row")
        return nums, "number"
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_parse_one(v, date_format))
        except ValueError:
            hint = (f"it does not match --date-format {date_format!r}" + (
                    "; quarters like it are read without --date-format" if _quarter(v) else "") if date_format else
                    f"it is not a valid date like the one before it ({values[i - 1]!r} at line {lines[i - 1]})"
                    if i else "give --date-format, e.g. %d/%m/%Y or %m/%d/%Y")
            raise DataError(f"column {column!r} line {lines[i]}: cannot read {v!r} as a date; {hint}") from None
    aware = [d.tzinfo is not None for d in out]
    if any(aware) and not all(aware):
        i, j = aware.index(True), aware.index(False)
        raise DataError(f"column {column!r}: line {lines[j]} ({values[j]!r}) has no UTC offset but line {lines[i]} "
                        f"({values[i]!r}) has one; give every date an offset (+01:00) or none")
    return out, "datetime"


def check_order(dates: list, column: str, first_line=2) -> None:
    """Dates must increase strictly: unsorted or duplicate dates are an error naming the lines."""
    line = line_numbers(first_line, len(dates))
    for i in range(1, len(dates)):
        if dates[i] == dates[i - 1]:
            clock = (" (if the clocks went back at that hour, give the dates UTC offsets: 02:00+02:00, then "
                     "02:00+01:00)" if isinstance(dates[i], dt.datetime) and dates[i].tzinfo is None
                     and dates[i].time() != dt.time() else "")
            raise DataError(f"column {column!r}: duplicate date {_show(dates[i])} at lines {line[i - 1]} "
                            f"and {line[i]}; keep one row per date{clock}")
        if dates[i] < dates[i - 1]:
            raise DataError(f"column {column!r}: dates are not sorted: line {line[i]} ({_show(dates[i])}) "
                            f"comes after line {line[i - 1]} ({_show(dates[i - 1])}); sort the file by date")


def _show(d) -> str:
    if isinstance(d, dt.datetime):
        return d.date().isoformat() if d.time() == dt.time() and d.tzinfo is None else d.isoformat()
    return f"{d:.15g}"


def _months_between(a: dt.datetime, b: dt.datetime) -> int:
    return (b.year - a.year) * 12 + (b.month - a.month)


def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


BUSINESS_ANCHORS = ("last_bday", "first_bday")


def _anchored(year: int, month: int, day) -> int:
    """The day of ``month`` that ``day`` names: D (1-31; a shorter month's last day), or the month's last or
    first weekday ("last_bday", "first_bday")."""
    n = _month_length(year, month)
    if day == "last_bday":
        return n - max(0, dt.date(year, month, n).weekday() - 4)
    if day == "first_bday":
        w = dt.date(year, month, 1).weekday()
        return 1 if w < 5 else 8 - w
    return min(day, n)


def _add_months(d: dt.datetime, n: int, day) -> dt.datetime:
    """d plus n months, on the day of that month that ``day`` names (see :func:`_anchored`)."""
    m = d.month - 1 + n
    year, month = d.year + m // 12, m % 12 + 1
    return d.replace(year=year, month=month, day=_anchored(year, month, day))


def _monthly_anchor(dates: list, share: float = 0.9):
    """The day monthly dates keep to, or None if they are not monthly: every date in a later month than the
    one before, at one time of day, and at least ``share`` of them on one anchor (a mistyped day does not
    make the series daily; :func:`gap_note` names it). Anchors: a day D (1-31), the last or first weekday;
    a tie goes to the day."""
    if any(d.time() != dates[0].time() for d in dates) or min(_months_between(a, b)
                                                             for a, b in zip(dates, dates[1:])) <= 0:
        return None
    counts = {day: sum(d.day == _anchored(d.year, d.month, day) for d in dates)
              for day in list(range(1, 32)) + list(BUSINESS_ANCHORS)}
    best = max(counts, key=lambda k: counts[k])                         # the first of equals: a day
    return best if counts[best] >= share * len(dates) else None


def _most_common(values):
    """The most frequent value; a tie goes to the smallest."""
    counts = Counter(values)
    top = max(counts.values())
    return min(v for v, n in counts.items() if n == top)


def _seconds_apart(dates: list) -> List[float]:
    """Seconds from each date to the next; for dates with UTC offsets, on the local calendar when that makes the
    most common gap a whole number of days (across a clock change a day is 23 or 25 hours)."""
    absolute = [(b - a).total_seconds() for a, b in zip(dates, dates[1:])]
    if dates[0].tzinfo is None:
        return absolute
    wall = [(b.replace(tzinfo=None) - a.replace(tzinfo=None)).total_seconds() for a, b in zip(dates, dates[1:])]
    common = _most_common(wall)
    return wall if common > 0 and common % 86400 == 0 else absolute


class DateStep:
    """How to go from one date to the next (see the module docstring).

    ``kind``: number, months, bdays or seconds; ``size``: steps of that kind. For months, ``day`` is what
    the dates keep to: a day of the month (31: month ends), "last_bday" or "first_bday" (the month's last
    or first weekday), or None (the last date's day); ``month_only`` shows them as 2013-03, ``quarter``
    (a :func:`quarter_style` template) as quarters, 2013-Q2.
    """

    def __init__(self, kind: str, size, fmt: Optional[str] = None, *, month_only: bool = False,
                 day=None, quarter: Optional[str] = None):
        self.kind, self.size, self.fmt = kind, size, fmt
        self.month_only, self.day, self.quarter = month_only, day, quarter

    def future(self, last, horizon: int) -> list:
        out, d = [], last
        try:
            for _ in range(horizon):
                if self.kind == "number":
                    d = d + self.size
                elif self.kind == "months":         # counted from ``last``: a shorter month's day does not stick
                    d = _add_months(last, self.size * (len(out) + 1), self.day or last.day)
                elif self.kind == "bdays":
                    d = d + dt.timedelta(days=1)
                    while d.weekday() >= 5:
                        d = d + dt.timedelta(days=1)
                else:
                    d = d + dt.timedelta(seconds=self.size)
                out.append(d)
        except (ValueError, OverflowError):     # datetime ends at 9999-12-31
            raise DataError(f"the forecast dates run past the end of the calendar (year 9999) after {len(out)} "
                            f"steps from {self.format(last)}; ask for a horizon (--horizon) of at most "
                            f"{len(out)}") from None
        return out

    def format(self, d) -> str:
        if self.kind == "number":
            return _show(d)
        if self.fmt:
            return d.strftime(self.fmt)
        if self.kind == "months" and self.quarter and d.day == 1 and d.month % 3 == 1:
            return self.quarter.replace("{year}", f"{d.year:04d}").replace("{q}", str(d.month // 3 + 1))
        if self.kind == "months" and d.day == 1 and self.month_only:
            return d.strftime("%Y-%m")
        if self.kind == "seconds" and self.size % 86400:        # hours, minutes: midnight keeps its time
            return d.isoformat()
        return _show(d)

    def __repr__(self):
        return f"DateStep({self.kind!r}, {self.size!r})"


def infer_step(dates: List, kind: str, date_format: Optional[str] = None, raw: Sequence[str] = ()) -> DateStep:
    """The step that continues ``dates`` (see the module docstring)."""
    if len(dates) < 2:
        raise DataError("need at least two dates to tell the step between them")
    if kind == "number":          # differences to a power of ten well above the values' float rounding
        q = 10.0 ** math.ceil(math.log10(max(abs(dates[0]), abs(dates[-1])) * 1e-13))
        return DateStep("number", _most_common(float(f"{round((b - a) / q) * q:.12g}")
                                               for a, b in zip(dates, dates[1:])))
    days = _seconds_apart(dates)
    anchor = _monthly_anchor(dates)
    if anchor is not None:
        month_only = bool(raw) and all(len(r.strip()) in (6, 7) and r.strip()[4] == "-" for r in raw[:3])
        styles = {quarter_style(r.strip()) for r in raw} if date_format is None else {None}
        quarter = styles.pop() if len(styles) == 1 else None      # one style throughout, or dates as ISO
        return DateStep("months", _most_common(_months_between(a, b) for a, b in zip(dates, dates[1:])),
                        date_format, month_only=month_only and quarter is None, day=anchor, quarter=quarter)
    if all(d.weekday() < 5 for d in dates) and 3 * 86400 in days and _most_common(days) == 86400:
        return DateStep("bdays", 1, date_format)
    return DateStep("seconds", _most_common(days), date_format)     # > 0: the dates increase (check_order)


def _steps_apart(dates: list, step: DateStep) -> List[float]:
    """How many steps of ``step`` lead from each date to the next (1.0 when it follows)."""
    if step.kind == "number":
        k = [(b - a) / step.size for a, b in zip(dates, dates[1:])]
    elif step.kind == "months":
        k = [_months_between(a, b) / step.size for a, b in zip(dates, dates[1:])]
    else:
        k = [g / step.size for g in _seconds_apart(dates)]
    return [float(round(x)) if abs(x - round(x)) < 1e-4 else x for x in k]    # a float index's rounding


def step_words(step: DateStep) -> str:
    """The step in words: ``1 month``, ``7 days``, ``1 business day``, ``0.5``."""
    if step.kind == "number":
        return _show(step.size)
    if step.kind == "months":
        return "1 month" if step.size == 1 else f"{step.size} months"
    if step.kind == "bdays":
        return "1 business day"
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if step.size % seconds == 0:
            n = int(step.size // seconds)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{step.size:g} seconds"


def gap_note(dates: list, step: DateStep, first_line=2) -> Optional[str]:
    """A note when consecutive dates are not one ``step`` apart, else None (business days are not checked).

    The note counts the gaps, names the first by its file lines, counts the missing dates where every gap is
    a whole number of steps, and otherwise asks for a resampled file.
    """
    if step.kind == "bdays" or len(dates) < 2:
        return None
    lines = line_numbers(first_line, len(dates))
    notes = []
    if step.kind == "months" and step.day is not None:
        off = [i for i, d in enumerate(dates) if d.day != _anchored(d.year, d.month, step.day)]
        if off:
            notes.append(f"{len(off)} date(s) are not on {_anchor_words(step.day)} like the others (the first: "
                         f"{step.format(dates[off[0]])} at line {lines[off[0]]}); check them")
    gaps = [(i, k) for i, k in enumerate(_steps_apart(dates, step), start=1) if k != 1.0]
    if not gaps:
        return "; ".join(notes) or None
    i, _ = gaps[0]
    whole = all(k > 1 and k == int(k) for _, k in gaps)
    missing = sum(int(k) - 1 for _, k in gaps) if whole else 0
    fix = ("add rows for the missing dates (empty values, with --fill interpolate) or resample the file" if whole
           else f"resample the file to one row every {step_words(step)}")
    return "; ".join(notes + [
            f"the dates are not evenly spaced: {len(gaps)} of {len(dates) - 1} gaps differ from the step of "
            f"{step_words(step)} (the first: {step.format(dates[i - 1])} at line {lines[i - 1]}, then "
            f"{step.format(dates[i])} at line {lines[i]})" + (f", {missing} date(s) missing in all" if whole else "")
            + f"; the model reads rows as evenly spaced, so {fix}"])


def offset_note(dates: list, first_line=2) -> Optional[str]:
    """A note when dates with UTC offsets change offset (a clock change), else None: the forecast keeps the
    last date's offset, as rnnkit uses no time-zone database to know when the next change comes."""
    if not dates or not isinstance(dates[0], dt.datetime) or dates[0].tzinfo is None:
        return None
    offsets = [d.utcoffset() for d in dates]
    changes = [i for i in range(1, len(dates)) if offsets[i] != offsets[i - 1]]
    if not changes:
        return None
    lines, i = line_numbers(first_line, len(dates)), changes[0]
    last = dates[-1].strftime("%z")
    last = f"{last[:3]}:{last[3:]}" if len(last) == 5 else last
    return (f"the dates change UTC offset {len(changes)} time(s) (clock changes; the first at line {lines[i]}: "
            f"{_show(dates[i - 1])} then {_show(dates[i])}); the forecast keeps the last offset, {last}, as no "
            "time-zone database is used: its dates after the next clock change are off by the change")


def _anchor_words(day) -> str:
    return {"last_bday": "the month's last weekday", "first_bday": "the month's first weekday",
            31: "the month's last day"}.get(day, f"day {day} of the month")


def fits(dates: list, step: DateStep) -> bool:
    """Whether ``dates`` follow ``step`` without a gap (business days: weekdays at most one weekend or
    holiday apart), so that a short file can be read with a model's step."""
    if len(dates) < 2 or (step.kind == "number") != (not isinstance(dates[0], dt.datetime)):
        return False
    if step.kind == "bdays":
        return all(d.weekday() < 5 for d in dates) and all(0 < g <= 4 * 86400 for g in _seconds_apart(dates))
    return gap_note(dates, step) is None                 # one step apart, on the month's anchor
