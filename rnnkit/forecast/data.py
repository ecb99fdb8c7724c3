"""Series from CSV files (standard library ``csv``, no pandas) and the embedded stock prices.

A CSV file has a header row, a date column, one or more target columns and
optionally covariate columns. :func:`read_series_csv` checks everything a user
can get wrong and says where: a missing file or column (listing the columns
there are, and the closest name), text in a numeric column, missing values
(named by line, or filled by an explicit ``fill`` policy), unsorted or
duplicate dates, infinite values. Dates that are not evenly spaced (missing
months, a skipped day) are not an error but a note in ``SeriesData.notes``.

``fill`` policies for missing values: ``"none"`` (an error naming the lines),
``"ffill"`` (carry the last value forward), ``"interpolate"`` (linear in the
row number), ``"drop"`` (remove the rows).

Trailing rows whose targets are all empty but whose known-future covariates
are filled are the forecast steps' covariates (for ``predict``), not missing
values.

The embedded default data (:func:`load_stock`) are real daily prices of AAPL,
GOOG, IBM, MSFT (2000-2013; GOOG from 2004) and FB (2012-2013) from the
``bokeh_sampledata`` package (public domain, Quandl WIKI); it is an optional
extra, ``pip install bokeh_sampledata``.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import DataError, PathError
from ..io.atomic import write_text
from ..io.inputs import read_text
from .dates import DateStep, check_order, gap_note, infer_step, line_numbers, offset_note, parse_dates
from .validation import describe_rows

__all__ = ["SeriesData", "read_series_csv", "series_from_columns", "load_stock", "STOCK_TICKERS",
           "FILL_POLICIES", "write_forecast_csv"]

FILL_POLICIES = ("none", "ffill", "interpolate", "drop")
STOCK_TICKERS = ("AAPL", "GOOG", "IBM", "MSFT", "FB")
_MISSING = {"", "na", "n/a", "nan", "null", "none", "-", "?"}


@dataclass
class SeriesData:
    """A validated series: dates, targets and covariates, aligned row by row."""

    dates: list
    y: np.ndarray                                   # (T, k)
    target: List[str]
    past: Optional[np.ndarray] = None               # (T, p)
    past_names: List[str] = field(default_factory=list)
    future: Optional[np.ndarray] = None             # (T + extra, f): may run past the last target
    future_names: List[str] = field(default_factory=list)
    step: Optional[DateStep] = None
    source: str = ""
    notes: List[str] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)  # file line of each date (empty: not from a file)

    @property
    def y_1d(self) -> np.ndarray:
        return self.y[:, 0] if self.y.shape[1] == 1 else self.y

    def format_date(self, d) -> str:
        return self.step.format(d) if self.step else str(d)

    def where(self, row: int) -> str:
        """Row ``row`` (0-based) as a user finds it: its date, and its file line when read from a file."""
        if row >= len(self.dates):
            return f"row {row + 1}"
        line = f" (line {self.lines[row]})" if row < len(self.lines) else ""
        return f"{self.format_date(self.dates[row])}{line}"


def _split_names(names) -> List[str]:
    if names is None:
        return []
    if isinstance(names, str):
        names = names.split(",")
    return [n.strip() for n in names if n and n.strip()]


_ROLE_FLAGS = {"date": "--date", "target": "--target", "past covariate": "--past-covariates",
               "future covariate": "--future-covariates"}


def _column_error(name: str, available: Sequence[str], role: str, source: str, trained: bool) -> DataError:
    """One sentence: the role, the flag, the columns there are, and the closest name if any. ``trained``: the
    names are a fitted model's, which no flag changes: the fix is to rename the file's column."""
    close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
    if not close:
        close = [a for a in available if a.lower() == name.lower()]
    if trained:
        like = f" (is it {close[0]!r}?)" if close else ""
        return DataError(f"{source}: the model was trained with the {role} column {name!r}, which is not among the "
                         f"columns {', '.join(available)}; rename the file's column to {name!r}{like}")
    flag = _ROLE_FLAGS.get(role, role)
    fix = f"did you mean {close[0]!r}?" if close else f"give {flag} one of them."
    return DataError(f"{source}: {role} column {name!r} ({flag}) not found among the columns "
                     f"{', '.join(available)}; {fix}")


def _to_float(text: str):
    """float(text), None for a missing marker; raises ValueError for anything else."""
    t = text.strip()
    if t.lower() in _MISSING:
        return None
    if "_" in t:            # float() accepts "1_000"; in a CSV cell it is more likely a typo
        raise ValueError(t)
    return float(t)


def _number_hint(text: str) -> str:
    """Why a value that looks numeric is not read: a percent sign, a decimal comma, thousands separators."""
    t = text.strip()
    if t.endswith("%"):
        return " (write percentages without the % sign)"
    if "," in t and t.replace(",", "").replace(".", "").lstrip("+-").isdigit():
        return " (thousands separators and decimal commas are not read: write 10000.5)"
    return ""


def _numeric(values: Sequence[str], name: str, first_line) -> np.ndarray:
    lines = line_numbers(first_line, len(values))
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            x = _to_float(v)
        except ValueError:
            raise DataError(f"column {name!r} line {lines[i]}: {v.strip()!r} is not a number{_number_hint(v)}; "
                            "fix the value, or choose another column") from None
        out[i] = np.nan if x is None else x
    return out


def _fill(a: np.ndarray, policy: str, names: List[str], dates: list, lines: np.ndarray, fmt) -> np.ndarray:
    """Apply the fill policy to NaN cells of a (T, c); returns the rows to keep (mask).

    ``lines`` (T,) are the file lines of the rows, for the messages."""
    keep = np.ones(len(a), bool)
    miss = np.isnan(a)
    if not miss.any():
        return keep
    rows = np.nonzero(miss.any(axis=1))[0]
    cols = [names[j] for j in np.nonzero(miss.any(axis=0))[0]]
    if policy == "none":
        lines = describe_rows(lines[rows])
        raise DataError(f"missing values in column(s) {', '.join(map(repr, cols))} at line(s) {lines} "
                        f"(dates {', '.join(fmt(dates[r]) for r in rows[:3])}{', ...' if len(rows) > 3 else ''}); "
                        "fix them or choose a --fill policy: ffill, interpolate or drop")
    if policy == "drop":
        keep[rows] = False
        return keep
    for j in range(a.shape[1]):
        col, m = a[:, j], miss[:, j]
        if not m.any():
            continue
        ok = np.nonzero(~m)[0]
        if len(ok) == 0:
            raise DataError(f"column {names[j]!r} has no values at all")
        if policy == "ffill":
            if m[0]:
                raise DataError(f"column {names[j]!r}: the first value (line {lines[0]}) is missing, so "
                                "ffill has nothing to carry forward; use --fill interpolate or drop")
            idx = np.maximum.accumulate(np.where(m, 0, np.arange(len(col))))
            a[:, j] = col[idx]
        else:   # interpolate linearly in the row number; ends take the nearest value
            a[m, j] = np.interp(np.nonzero(m)[0], ok, col[ok])
    return keep


def series_from_columns(columns: Dict[str, List[str]], *, date: str, target, past_covariates=None,
                        future_covariates=None, fill: str = "none", date_format: Optional[str] = None,
                        source: str = "data", lines=None, trained: bool = False) -> SeriesData:
    """Validate columns of text (name -> values) into a :class:`SeriesData` (see the module docstring).

    ``lines``: the file line of each row for the messages (default: 2, 3, ... under a header line);
    ``trained``: see :func:`read_series_csv`.
    """
    if fill not in FILL_POLICIES:
        raise DataError(f"--fill: expected one of {list(FILL_POLICIES)}, got {fill!r}")
    available = list(columns)
    targets, past, future = _split_names(target), _split_names(past_covariates), _split_names(future_covariates)
    if not targets:
        raise DataError("give at least one target column")
    for role, names in (("date", [date]), ("target", targets), ("past covariate", past),
                        ("future covariate", future)):
        for n in names:
            if n not in columns:
                raise _column_error(n, available, role, source, trained)
    used = [date] + targets + past + future
    dup = sorted({n for n in used if used.count(n) > 1})
    if dup:
        raise DataError(f"column(s) {dup} are given more than one role (date, target, covariate); give each once")
    T = len(columns[date])
    if T == 0:
        raise DataError(f"{source}: has a header but no data rows")
    lines = line_numbers(2 if lines is None else lines, T)    # (T,): line 1 is the header
    Y = np.stack([_numeric(columns[n], n, lines) for n in targets], axis=1)
    P = np.stack([_numeric(columns[n], n, lines) for n in past], axis=1) if past else None
    F = np.stack([_numeric(columns[n], n, lines) for n in future], axis=1) if future else None
    notes = []
    # trailing rows with no target but known-future covariates: the forecast steps' covariates
    n_obs = T
    if F is not None:
        while n_obs > 0 and np.isnan(Y[n_obs - 1]).all():      # a forecast row: its covariates checked below
            n_obs -= 1
        if n_obs < T:
            notes.append(f"{T - n_obs} trailing row(s) without a target hold the known-future covariates "
                         "of the forecast steps")
    raw_dates = columns[date]
    dates, kind = parse_dates(raw_dates, date, date_format, lines)
    check_order(dates, date, lines)
    for name, arr in (("target", Y), ("past covariate", P), ("future covariate", F)):
        if arr is not None and np.isinf(arr).any():
            rows = lines[np.nonzero(np.isinf(arr).any(axis=1))[0]]
            raise DataError(f"{name} values are infinite at line(s) {describe_rows(rows)}; fix or remove them")
    step = infer_step(dates, kind, date_format, raw_dates)
    obs = np.concatenate([a[:n_obs] for a in (Y, P) if a is not None], axis=1)
    names = targets + past
    if F is not None:
        obs = np.concatenate([obs, F[:n_obs]], axis=1)
        names = names + future
    if F is not None and np.isnan(F[n_obs:]).any():
        bad = np.isnan(F[n_obs:])                                                 # (T - n_obs, f)
        cols = ", ".join(repr(future[j]) for j in np.nonzero(bad.any(axis=0))[0])
        raise DataError(f"the forecast rows (no target) at line(s) {describe_rows(lines[n_obs:][bad.any(axis=1)])} "
                        f"lack known-future covariate(s) {cols}; give their values (the forecast needs them), or "
                        "remove those rows")
    missing = np.isnan(obs).any(axis=1)                                         # (n_obs,)
    if fill == "none" and F is None and missing.any() and np.isnan(obs[-1, :len(targets)]).all():
        k = 0
        while k < n_obs and np.isnan(obs[n_obs - 1 - k, :len(targets)]).all():
            k += 1
        raise DataError(f"the last {k} row(s) (line(s) {describe_rows(lines[n_obs - k:n_obs])}) have no target value: "
                        "remove them, or, if they hold known-future covariates for the forecast steps, name those "
                        "columns with --future-covariates when training")
    keep = _fill(obs, fill, names, dates, lines[:n_obs], step.format)
    if fill in ("ffill", "interpolate") and missing.any():
        notes.append(f"filled the missing values of {int(missing.sum())} row(s) at line(s) "
                     f"{describe_rows(lines[:n_obs][missing])} ({fill})"
                     + ("; the last rows carry the last value forward, as nothing follows them"
                        if fill == "interpolate" and missing[-1] else ""))
    k, p = len(targets), len(past)
    for j, n in enumerate(targets):
        col = obs[keep, j]
        if len(col) and np.all(col == col[0]):
            raise DataError(f"target column {n!r} is constant (every value is {col[0]:g}): there is nothing "
                            "to forecast; check that it is the right column")
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} row(s) with missing values")
    Yk = obs[keep, :k]
    Pk = obs[keep, k:k + p] if past else None
    Fk = None
    if F is not None:
        Fk = np.concatenate([obs[keep, k + p:], F[n_obs:]])
    kept_dates = [d for d, ok in zip(dates[:n_obs], keep) if ok] + dates[n_obs:]
    kept_lines = np.concatenate([lines[:n_obs][keep], lines[n_obs:]])          # (len(kept_dates),)
    gaps = gap_note(kept_dates, step, kept_lines)          # the rows the model reads, after --fill drop
    if gaps:
        notes.append(gaps)
    clocks = offset_note(kept_dates, kept_lines)
    if clocks:
        notes.append(clocks)
    return SeriesData(dates=kept_dates, y=Yk, target=targets, past=Pk, past_names=past, future=Fk,
                      future_names=future, step=step, source=source, notes=notes, lines=kept_lines.tolist())


def read_series_csv(path, *, date: str, target, past_covariates=None, future_covariates=None,
                    fill: str = "none", date_format: Optional[str] = None, delimiter: Optional[str] = None,
                    what: str = "DATA", trained: bool = False) -> SeriesData:
    """Read and validate a CSV file (see the module docstring).

    The file is checked and read with the input limit of :mod:`rnnkit.io.inputs`
    (a FIFO, a device or a file over the limit is refused before reading);
    ``what`` names the argument in those messages. ``trained``: the column names are a fitted model's
    (for ``predict``), so a missing one is to be renamed in the file, not chosen with a flag.
    """
    path = os.fspath(path)
    try:
        text = read_text(path, what, encoding="utf-8-sig")
    except PathError as e:
        if "is not valid utf-8" in str(e):
            raise DataError(f"{path}: is not UTF-8 text; is it a CSV file? (save it as UTF-8 CSV)") from None
        raise
    if not text.strip():
        raise DataError(f"{path}: is empty")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    header, body, lines = _csv_rows(text, delimiter, path)
    if header is None:
        raise DataError(f"{path}: is empty (no header row)")
    columns = {h: [r[j] for r in body] for j, h in enumerate(header)}
    return series_from_columns(columns, date=date, target=target, past_covariates=past_covariates,
                               future_covariates=future_covariates, fill=fill, date_format=date_format,
                               source=path, lines=lines, trained=trained)


def _check_unique(header, path: str, line: int) -> None:
    """Refuse a header that names a column twice: a flag naming it could mean either column."""
    first = {}
    for j, h in enumerate(header, 1):
        if h and h in first:
            raise DataError(f"{path}: line {line}: the header names column {h!r} twice (columns {first[h]} and "
                            f"{j}); rename one of them so that a flag naming it means one column")
        first.setdefault(h, j)


def _csv_rows(text: str, delimiter: str, path: str):
    """(header, body rows, file line of each body row) of a CSV text; blank rows are skipped.

    A record's line is the file line it starts on (1-based, the header is line 1
    when it is the first). Any :class:`csv.Error` (a field over the csv module's
    size limit, a NUL byte, a quote left open) is a :class:`DataError` naming the line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header, body, lines = None, [], []
    start = 1
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                if header is None:
                    header = [h.strip() for h in r]
                    _check_unique(header, path, start)
                else:
                    if len(r) != len(header):
                        raise DataError(f"{path}: line {start} has {len(r)} fields but the header has "
                                        f"{len(header)}; check the delimiter and quoting")
                    body.append(r)
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        if "field limit" in str(e):
            why = (f"a field is longer than {csv.field_size_limit()} characters; is it the right file, "
                   "or is a quote left open?")
        else:
            why = f"it is not valid CSV ({e}); check the quoting and the delimiter"
        raise DataError(f"{path}: line {start}: {why}") from None
    return header, body, lines


def load_stock(ticker: str = "AAPL", *, target: str = "AdjClose", past_covariates=None) -> SeriesData:
    """Daily prices of ``ticker`` from ``bokeh_sampledata`` (columns Date, Open, High, Low, Close,
    Volume, AdjClose; AdjClose is split- and dividend-adjusted, the one to model)."""
    ticker = ticker.upper()
    if ticker not in STOCK_TICKERS:
        raise DataError(f"ticker {ticker!r}: the embedded data has {', '.join(STOCK_TICKERS)}")
    try:
        from bokeh_sampledata import stocks
    except ImportError:
        raise DataError("the embedded stock data needs the optional package bokeh_sampledata: "
                        "pip install bokeh_sampledata (or pass your own CSV)") from None
    d = getattr(stocks, ticker)
    names = {"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
             "Volume": "volume", "AdjClose": "adj_close"}
    columns = {out: [str(v) for v in d[src]] for out, src in names.items()}
    return series_from_columns(columns, date="Date", target=target, past_covariates=past_covariates,
                               source=f"embedded {ticker} prices (bokeh_sampledata)")


def write_forecast_csv(path, dates: list, columns: Dict[str, np.ndarray], fmt=str, what: str = "--out") -> str:
    """One row per forecast date: the date, then the named columns (written atomically)."""
    names = list(columns)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["date"] + names)
    for i, d in enumerate(dates):
        w.writerow([fmt(d)] + [_num(columns[n][i]) for n in names])
    return write_text(path, buf.getvalue(), what=what)


def _num(x) -> str:
    x = float(x)
    return "" if math.isnan(x) else f"{x:.8g}"
