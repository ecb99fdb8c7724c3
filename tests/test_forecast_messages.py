"""`rnnkit forecast` messages found by a user sweep: malformed CSV files, --out-dir of the stock example,
and line numbers that agree across messages (1-based file lines, the header is line 1)."""

import csv
import os
import re

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.errors import DataError
from rnnkit.forecast.data import read_series_csv, series_from_columns
from rnnkit.forecast import scaling

FAST = ["--lookback", "6", "--hidden-size", "4", "--epochs", "1", "--no-progress"]


def _air(path, n=48, edit=None):
    """A monthly series Month,Passengers; ``edit`` maps a 0-based data row to a new Passengers text."""
    rows = [[f"{1949 + i // 12}-{i % 12 + 1:02d}", str(100 + (i * 7) % 23 + i)] for i in range(n)]
    for i, v in (edit or {}).items():
        rows[i][1] = v
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Month", "Passengers"])
        w.writerows(rows)
    return str(path)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# -- 1. a malformed CSV file is a DataError naming the file and the line ---------------------------------
def test_a_field_over_the_csv_limit_names_the_file_and_line(tmp_path, capsys):
    data = _air(tmp_path / "longline.csv", edit={10: "9" * (csv.field_size_limit() + 10)})   # data row 10: line 12
    code, _, err = _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                                 "--out", str(tmp_path / "f.npz")] + FAST)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), err
    assert f"{data}: line 12: a field is longer than {csv.field_size_limit()} characters" in err, err
    assert not (tmp_path / "f.npz").exists()


def test_predict_reports_the_long_field_too(tmp_path, capsys):
    good = _air(tmp_path / "air.csv")
    model = str(tmp_path / "air.npz")
    assert _run(capsys, ["forecast", "train", good, "--date", "Month", "--target", "Passengers",
                         "--out", model] + FAST)[0] == 0
    bad = _air(tmp_path / "longline.csv", edit={0: "1" * (csv.field_size_limit() + 1)})
    code, _, err = _run(capsys, ["forecast", "predict", model, bad])
    assert code == 2 and f"{bad}: line 2: a field is longer than" in err, err


def test_any_csv_error_while_reading_is_a_data_error(tmp_path, monkeypatch):
    data = _air(tmp_path / "air.csv")

    def broken(*args, **kwargs):
        def rows():
            yield ["Month", "Passengers"]
            raise csv.Error("some new csv complaint")
        return _Reader(rows())

    class _Reader:
        line_num = 1

        def __init__(self, it):
            self.it = it

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)

    monkeypatch.setattr(csv, "reader", broken)
    with pytest.raises(DataError, match=r"air\.csv: line 2: it is not valid CSV \(some new csv complaint\)"):
        read_series_csv(data, date="Month", target="Passengers")


def test_line_numbers_count_blank_lines_and_multi_line_records(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text('Month,Passengers,Note\n1949-01,1,a\n\n1949-02,2,"two\nlines"\n1949-03,abc,c\n')
    with pytest.raises(DataError, match=r"column 'Passengers' line 6: 'abc' is not a number"):
        read_series_csv(str(path), date="Month", target="Passengers")
    path.write_text("Month,Passengers\n1949-01,1\n\n1949-03,2\n1949-02,3\n")
    with pytest.raises(DataError, match=r"dates are not sorted: line 5 \(1949-02-01\) comes after line 4"):
        read_series_csv(str(path), date="Month", target="Passengers")
    path.write_text("Month,Passengers\n\n1949-01,1\n1949-02,\n1949-03,3\n")
    with pytest.raises(DataError, match=r"at line\(s\) 4 "):
        read_series_csv(str(path), date="Month", target="Passengers")
    s = read_series_csv(str(path), date="Month", target="Passengers", fill="drop")
    assert s.lines == [3, 5]


def test_a_header_naming_a_column_twice_is_refused_with_line_and_columns(tmp_path, capsys):
    path = tmp_path / "twice.csv"     # before the fix the second 'Passengers' silently replaced the first
    path.write_text("\nMonth,Passengers,Passengers\n1949-01,1,7\n1949-02,2,7\n1949-03,3,7\n")
    with pytest.raises(DataError, match=r"twice.csv: line 2: the header names column 'Passengers' twice "
                                        r"\(columns 2 and 3\); rename one"):
        read_series_csv(str(path), date="Month", target="Passengers")
    code, _, err = _run(capsys, ["forecast", "train", str(path), "--date", "Month", "--target", "Passengers",
                                 "--out", str(tmp_path / "f.npz")] + FAST)
    assert code == 2 and "names column 'Passengers' twice" in err and "Traceback" not in err, err
    assert not (tmp_path / "f.npz").exists()
    path.write_text("Month,Passengers,,\n1949-01,1,,\n1949-02,2,,\n1949-03,3,,\n")   # unnamed columns may repeat
    assert read_series_csv(str(path), date="Month", target="Passengers").y[:, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.update(date_format=5), "'date_format' should be a string or null, got 5"),
    (lambda s: s.update(date_column=None), "'date_column' should be a column name, got None"),
    (lambda s: s.update(target="Passengers"), "'target' should be a list of column names"),
    (lambda s: s["step"].update(kind="weeks"), "'step.kind' should be number, months"),
    (lambda s: s["step"].update(size=True), "'step.size' should be a number"),
    (lambda s: s["step"].update(quarter="{year.__class__}Q{q}"),           # rendered by replace(), never format()
     "'step.quarter' should be a quarter style such as {year}Q{q}, or null"),
    (lambda s: s["step"].update(day=32),
     "'step.day' should be a day of the month (1-31), last_bday, first_bday or null, got 32"),
])
def test_an_edited_series_record_is_refused_on_load(tmp_path, capsys, edit, field):
    from rnnkit.io.modelfile import load_model_file, save_model_file
    data, model = _air(tmp_path / "air.csv"), tmp_path / "f.npz"
    assert _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                         "--out", str(model)] + FAST)[0] == 0
    m = load_model_file(model)
    edit(m.config["fitted"]["series"])    # a valid checksum over a wrong type: it once failed in strptime
    bad = tmp_path / "edited.npz"
    save_model_file(bad, kind=m.kind, config=m.config, arrays=m.arrays, meta=m.meta)
    code, _, err = _run(capsys, ["forecast", "predict", str(bad), data])
    assert code == 2 and field in err and "cannot rebuild the forecaster model" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("flag, value, message", [
    ("--initial", "0", "initial (--initial) must be an integer >= 1"),      # once: a reshape error, no flag
    ("--initial", "-5", "initial (--initial) must be an integer >= 1"),
    ("--stride", "0", "stride (--stride) must be an integer >= 1"),
    ("--max-folds", "0", "max_folds (--max-folds) must be an integer >= 1"),
    ("--refit", "-1", "refit (--refit) must be >= 0"),
])
def test_backtest_settings_are_checked_before_the_data_is_read(tmp_path, capsys, flag, value, message):
    data = _air(tmp_path / "air.csv")
    code, out, err = _run(capsys, ["forecast", "backtest", data, "--date", "Month", "--target", "Passengers",
                                   "--horizon", "3", flag, value] + FAST)
    assert code == 2 and message in err and err.count("\n") == 1 and out == "", (out, err)


def test_a_horizon_past_the_calendar_names_the_longest_one(tmp_path, capsys, monkeypatch):
    data, model = _air(tmp_path / "air.csv"), tmp_path / "f.npz"
    assert _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                         "--out", str(model)] + FAST)[0] == 0
    from rnnkit.forecast import RNNForecaster

    def no_work(*a, **k):
        raise AssertionError("the dates are checked before forecasting (100,000 steps took 19 s)")
    monkeypatch.setattr(RNNForecaster, "predict", no_work)
    code, _, err = _run(capsys, ["forecast", "predict", str(model), data, "--horizon", "100000"])
    last = (9999 - 1952) * 12          # monthly steps from 1952-12 to 9999-12
    assert code == 2 and err.count("\n") == 1, err
    assert f"run past the end of the calendar (year 9999) after {last} steps from 1952-12" in err, err
    assert f"ask for a horizon (--horizon) of at most {last}" in err


# -- 3. one sentence for a missing column; positions as dates and file lines ----------------------------------
def test_a_missing_column_is_one_sentence_naming_the_flag(tmp_path, capsys):
    data = _air(tmp_path / "air.csv")
    code, _, err = _run(capsys, ["forecast", "train", data, "--date", "Date", "--target", "Passengers",
                                 "--out", str(tmp_path / "f.npz")] + FAST)
    assert code == 2
    assert (f"{data}: date column 'Date' (--date) not found among the columns Month, Passengers; "
            "give --date one of them.") in err, err


def test_log_transform_names_the_date_and_file_line(tmp_path, capsys):
    data = _air(tmp_path / "neg.csv", edit={40: "0", 45: "-5"})          # data rows 40, 45: lines 42, 47
    code, _, err = _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                                 "--transform", "log", "--out", str(tmp_path / "f.npz")] + FAST)
    assert code == 2, err
    assert "column 'Passengers' at 1952-05 (line 42): the value 0 is <= 0, but --transform log takes " in err, err
    # the count is of the values the transform was given (the training part), not of the file
    assert re.search(r"\(2 of the (\d+) values it was given are <= 0\); use --transform level or --transform diff",
                     err), err
    assert "rows [" not in err


def test_log_transform_in_a_sliding_backtest_names_the_series_row(tmp_path, capsys):
    data = _air(tmp_path / "neg.csv", edit={40: "-1"})
    code, _, err = _run(capsys, ["forecast", "backtest", data, "--date", "Month", "--target", "Passengers",
                                 "--transform", "log_return", "--window", "sliding", "--initial", "30",
                                 "--max-folds", "1"] + FAST)
    assert code == 2 and "at 1952-05 (line 42): the value -1 is <= 0" in err, err


def test_scaler_reports_positions_in_the_array():
    y = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]])                  # (3, 2)
    with pytest.raises(DataError, match=r"y: column 1, row 1: the value -1 is <= 0") as e:
        scaling.SeriesScaler("log").fit(y)
    assert isinstance(e.value, scaling.NonPositiveLog)
    assert (e.value.row, e.value.column) == (1, 1)
    assert isinstance(e.value, DataError)


# -- 2. `forecast stock --out-dir`: checked before it is made; one line naming --out-dir -------------------
@pytest.mark.parametrize("case", ["no_such_data", "fifo", "bad_column", "refused_by_the_backtest"])
def test_a_refused_stock_run_leaves_no_out_dir(tmp_path, capsys, case):
    data = _air(tmp_path / "air.csv")
    date = "Month"
    extra = ["--initial", "5"] if case == "refused_by_the_backtest" else []   # after the folder is made
    if case == "no_such_data":
        data = str(tmp_path / "nosuch.csv")
    elif case == "fifo":
        data = str(tmp_path / "fifo")
        os.mkfifo(data)
    elif case == "bad_column":
        date = "Date"
    out_dir = tmp_path / "sd"
    code, _, err = _run(capsys, ["forecast", "stock", "--data", data, "--date", date, "--target", "Passengers",
                                 "--out-dir", str(out_dir)] + extra + FAST)
    assert code == 2, err
    assert not out_dir.exists(), err
    if case in ("no_such_data", "fifo"):
        assert f"--data {data}: " in err and "DATA" not in err, err


def test_stock_refuses_a_missing_parent_without_making_it(tmp_path, capsys):
    data = _air(tmp_path / "air.csv")
    out_dir = tmp_path / "nope" / "sd"
    code, _, err = _run(capsys, ["forecast", "stock", "--data", data, "--date", "Month", "--target", "Passengers",
                                 "--out-dir", str(out_dir)] + FAST)
    assert code == 2
    assert f"--out-dir {out_dir}: its parent directory {tmp_path / 'nope'} does not exist; create the parent" in err
    assert not (tmp_path / "nope").exists()


def test_stock_out_dir_name_too_long_or_parent_not_writable(tmp_path, capsys, monkeypatch):
    data = _air(tmp_path / "air.csv")
    argv = ["forecast", "stock", "--data", data, "--date", "Month", "--target", "Passengers"] + FAST
    long_dir = str(tmp_path / ("d" * 300))
    code, _, err = _run(capsys, argv + ["--out-dir", long_dir])
    assert code == 2 and err.count("\n") == 1, err
    assert "rnnkit: error: --out-dir " in err and "300 bytes long" in err and "choose a shorter name" in err, err
    assert long_dir not in err                      # cut, not the whole name

    import rnnkit.io.atomic as atomic

    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)       # as in /sys: the parent takes no new entry
    code, _, err = _run(capsys, argv + ["--out-dir", str(tmp_path / "x")])
    assert code == 2 and err.count("\n") == 1, err
    assert (f"--out-dir {tmp_path / 'x'}: cannot write in {tmp_path} (Operation not permitted); "
            "choose a writable directory") in err, err
    assert not (tmp_path / "x").exists()


def test_stock_mkdir_failure_is_one_line_naming_out_dir(tmp_path, capsys, monkeypatch):
    data = _air(tmp_path / "air.csv")
    import rnnkit.forecast.stock as stock_mod

    def refuse(path, *args, **kwargs):
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(stock_mod.os, "mkdir", refuse)
    code, _, err = _run(capsys, ["forecast", "stock", "--data", data, "--date", "Month", "--target", "Passengers",
                                 "--out-dir", str(tmp_path / "sd")] + FAST)
    assert code == 2 and err.count("\n") == 1, err
    assert f"--out-dir {tmp_path / 'sd'}: cannot create the directory (Operation not permitted)" in err, err


# -- 4. dates that are not evenly spaced are a note, not silence ------------------------------------------
def _series(dates, fill="none", values=None):
    values = values or [str((i * 7) % 11 + i) for i in range(len(dates))]
    return series_from_columns({"d": dates, "y": values}, date="d", target="y", fill=fill)


MONTHS = [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(48)]


def test_evenly_spaced_dates_give_no_note():
    assert _series(MONTHS).notes == []
    assert _series([f"{x:g}" for x in np.arange(0, 5, 0.5)]).notes == []


def test_missing_months_are_counted_and_the_first_gap_named_by_line():
    notes = _series(MONTHS[:10] + MONTHS[41:]).notes            # 2000-10 then 2003-06: 31 months missing
    assert len(notes) == 1, notes
    assert "1 of 16 gaps differ from the step of 1 month" in notes[0], notes
    assert "(the first: 2000-10 at line 11, then 2003-06 at line 12), 31 date(s) missing in all" in notes[0]
    assert "--fill interpolate" in notes[0]


@pytest.mark.parametrize("dates, words, first, missing", [
    ([f"2020-01-{d:02d}" for d in (1, 2, 3, 5, 6, 7, 8, 9, 12, 13)], "1 day", "2020-01-03 at line 4", 3),
    (["1", "2", "3", "4", "6", "7", "8", "9"], "step of 1 ", "4 at line 5", 1),
    ([f"2020-01-01T{h:02d}:00" for h in (0, 1, 2, 3, 5, 6, 7)], "1 hour", "2020-01-01T03:00:00 at line 5", 1),
])
def test_gaps_in_days_numbers_and_hours(dates, words, first, missing):
    (note,) = _series(dates).notes
    assert words in note and f"(the first: {first}" in note and f"{missing} date(s) missing" in note, note


def test_an_uneven_gap_is_noted_without_a_missing_count():
    (note,) = _series(["1", "2", "3", "4", "5.5", "6.5", "7.5"]).notes
    assert "1 of 6 gaps differ" in note and "missing in all" not in note, note


def test_business_days_skip_the_check_as_holidays_are_unknown():
    import datetime as dt
    days, d = [], dt.date(2020, 1, 1)
    while len(days) < 30:
        if d.weekday() < 5 and d != dt.date(2020, 1, 20):          # a Monday holiday
            days.append(d.isoformat())
        d += dt.timedelta(days=1)
    s = _series(days)
    assert s.step.kind == "bdays" and s.notes == []


def test_the_advice_works_rows_added_for_missing_dates_are_filled():
    values = [str(i % 5 + i) for i in range(12)]
    (note,) = _series(MONTHS[:5] + MONTHS[6:12], values=values[:5] + values[6:]).notes    # 2000-06 missing
    assert "1 date(s) missing in all" in note and "--fill interpolate" in note, note
    values[5] = ""                                                                      # the row added, empty
    s = _series(MONTHS[:12], fill="interpolate", values=values)
    assert s.notes == ["filled the missing values of 1 row(s) at line(s) 7 (interpolate)"] and s.y[5, 0] == pytest.approx((float(values[4]) + float(values[6])) / 2)


def test_rows_dropped_by_fill_drop_leave_gaps_that_are_noted():
    values = [str(i % 5 + i) for i in range(24)]
    values[3] = values[4] = ""
    notes = _series(MONTHS[:24], fill="drop", values=values).notes
    assert notes[0] == "dropped 2 row(s) with missing values", notes
    assert "2 date(s) missing in all" in notes[1] and "2000-03 at line 4, then 2000-06 at line 7" in notes[1], notes


def test_dates_closer_than_the_step_ask_for_a_resampled_file():
    (note,) = _series(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04", "2020-01-04T12:00",
                       "2020-01-05"]).notes
    assert "2 of 5 gaps differ from the step of 1 day" in note and "missing" not in note, note
    assert note.endswith("so resample the file to one row every 1 day"), note


def test_train_prints_the_gap_note(tmp_path, capsys):
    data = _air(tmp_path / "air.csv")
    with open(data) as f:
        lines = f.read().splitlines()
    with open(data, "w") as f:
        f.write("\n".join(lines[:21] + lines[25:]) + "\n")             # drop 1950-09 .. 1950-12
    code, out, err = _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                                   "--out", str(tmp_path / "f.npz")] + FAST)
    assert code == 0, err
    assert ("1 of 43 gaps differ from the step of 1 month (the first: 1950-08 at line 21, then 1951-01 at "
            "line 22), 4 date(s) missing in all") in out + err, out + err


def test_dates_with_and_without_a_utc_offset_are_one_line(tmp_path, capsys):
    path = tmp_path / "tz.csv"
    path.write_text("d,y\n2020-01-01T00:00+00:00,1\n2020-01-02T00:00+00:00,3\n2020-01-03,2\n2020-01-04T00:00+00:00,5\n")
    code, out, err = _run(capsys, ["forecast", "train", str(path), "--date", "d", "--target", "y",
                                   "--out", str(tmp_path / "f.npz")] + FAST)      # once: a TypeError traceback
    assert code == 2 and err.count("\n") == 1 and out == "", (out, err)
    assert ("column 'd': line 4 ('2020-01-03') has no UTC offset but line 2 ('2020-01-01T00:00+00:00') has one; "
            "give every date an offset (+01:00) or none") in err, err


def test_a_clock_change_is_not_a_gap_in_daily_or_hourly_dates():
    daily = [f"2020-03-{d}T00:00:00+01:00" for d in (27, 28, 29)] + [f"2020-03-{d}T00:00:00+02:00" for d in (30, 31)]
    s = _series(daily)
    clock = ("the dates change UTC offset 1 time(s) (clock changes; the first at line 5: 2020-03-29T00:00:00+01:00 "
             "then 2020-03-30T00:00:00+02:00); the forecast keeps the last offset, +02:00, as no time-zone database "
             "is used: its dates after the next clock change are off by the change")
    assert (s.step.kind, s.step.size, s.notes) == ("seconds", 86400, [clock])      # a note, not a gap
    assert [s.step.format(d) for d in s.step.future(s.dates[-1], 1)] == ["2020-04-01T00:00:00+02:00"]
    skipped = daily[:3] + daily[4:]                              # 03-30 missing, across the change
    note, _ = _series(skipped).notes
    assert "1 of 3 gaps differ from the step of 1 day" in note and "1 date(s) missing" in note, note
    hourly = ["2020-10-25T01:00+02:00", "2020-10-25T02:00+02:00", "2020-10-25T02:00+01:00", "2020-10-25T03:00+01:00"]
    s = _series(hourly)                                          # the repeated wall-clock hour is one hour on
    assert s.step.size == 3600 and len(s.notes) == 1 and "keeps the last offset, +01:00" in s.notes[0]
    assert _series([d.replace("+02:00", "+01:00") for d in daily]).notes == []     # one offset: nothing to say


def test_predict_on_a_file_of_another_step_says_so_first(tmp_path, capsys):
    data, model = _air(tmp_path / "air.csv"), tmp_path / "f.npz"
    assert _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                         "--out", str(model)] + FAST)[0] == 0
    daily = tmp_path / "daily.csv"
    daily.write_text("Month,Passengers\n" + "".join(f"2020-01-{d:02d},{100 + d * d % 17}\n" for d in range(1, 31)))
    code, out, err = _run(capsys, ["forecast", "predict", str(model), str(daily), "--horizon", "2"])
    first = out.splitlines()[0]
    assert code == 0 and first.startswith(f"{daily}: 30 rows 2020-01-01 .. 2020-01-30"), out
    assert first.endswith("the file's dates step by 1 day but the model was trained on steps of 1 month; the forecast "
                          "follows the file's step: check that it is the right file"), first
    assert out.splitlines()[1] == "forecast of Passengers for 2 step(s) after 2020-01-30 with 90% intervals:"
    code, out, err = _run(capsys, ["forecast", "predict", str(model), data, "--horizon", "2"])
    assert code == 0 and out.splitlines()[0] == f"{data}: 48 rows 1949-01 .. 1952-12, target Passengers", out


def test_predict_on_renamed_columns_says_to_rename_them_not_to_use_a_flag(tmp_path, capsys):
    data, model = _air(tmp_path / "air.csv"), tmp_path / "f.npz"
    assert _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                         "--out", str(model)] + FAST)[0] == 0
    other = tmp_path / "lower.csv"
    other.write_text(open(data).read().replace("Month,Passengers", "Month,passengers", 1))
    code, out, err = _run(capsys, ["forecast", "predict", str(model), str(other)])
    assert code == 2 and err.count("\n") == 1, err
    assert (f"{other}: the model was trained with the target column 'Passengers', which is not among the columns "
            "Month, passengers; rename the file's column to 'Passengers' (is it 'passengers'?)") in err, err
    assert "--target" not in err                                     # predict has no such flag


def test_filled_values_are_noted_and_trailing_rows_without_a_target_named():
    months, values = MONTHS[:24], [str(i % 5 + i) for i in range(24)]
    with pytest.raises(DataError, match=r"^the last 3 row\(s\) \(line\(s\) 23, 24 and 25\) have no target value: "
                                        r"remove them, or, if they hold known-future covariates"):
        _series(months, values=values[:21] + ["", "", ""])      # once: 'choose a --fill policy', which invents them
    assert _series(months, fill="ffill", values=values[:21] + ["", "", ""]).notes == [
        "filled the missing values of 3 row(s) at line(s) 23, 24 and 25 (ffill)"]
    values[5] = values[23] = ""
    assert _series(months, fill="interpolate", values=values).notes == [
        "filled the missing values of 2 row(s) at line(s) 7 and 25 (interpolate); the last rows carry the last "
        "value forward, as nothing follows them"]


def test_a_forecast_row_missing_one_future_covariate_is_named():
    months, values = MONTHS[:24], [str(i % 5 + i) for i in range(21)] + ["", "", ""]
    holiday = [str(i % 2) for i in range(23)] + [""]
    with pytest.raises(DataError) as e:       # once: blamed every column at lines 23-25 and advised --fill
        series_from_columns({"d": months, "y": values, "h": holiday}, date="d", target="y", future_covariates="h")
    assert str(e.value) == ("the forecast rows (no target) at line(s) 25 lack known-future covariate(s) 'h'; give "
                            "their values (the forecast needs them), or remove those rows")


@pytest.mark.parametrize("dates, message", [
    (["1950", "1951", "nan", "1953"], "line 4: 'nan' is not a number like the dates before it ('1950' at line 2)"),
    (["1950", "1951", "x", "1953"], "line 4: 'x' is not a number like the dates before it"),
    (["1950", "1951", "", "1953"], "line 4: the date is missing; fill it in or remove the row"),
    (["2020-01-01", " ", "2020-01-03"], "line 3: the date is missing"),
    (["inf", "1", "2"], "line 2: 'inf' is not a date or a finite number"),
])
def test_a_bad_value_in_a_date_column_is_named_by_its_line(dates, message):
    """Once: 'cannot convert float NaN to integer', or an empty year blamed on line 2's good '1950'."""
    with pytest.raises(DataError, match=f"^column 'd' {re.escape(message)}"):
        _series(dates)


def test_predict_without_a_calibration_gives_the_heads_intervals_and_says_so(tmp_path, capsys):
    """README: --calibration-fraction 0 gives the network's own intervals; predict once refused it unless
    --interval-method head was given."""
    data, model = _air(tmp_path / "air.csv"), tmp_path / "c0.npz"
    assert _run(capsys, ["forecast", "train", data, "--date", "Month", "--target", "Passengers",
                         "--calibration-fraction", "0", "--out", str(model)] + FAST)[0] == 0
    code, out, err = _run(capsys, ["forecast", "predict", str(model), "--horizon", "2"])
    assert code == 0 and out.startswith("intervals: the network's own, uncalibrated (this model has no conformal "
                                        "calibration"), out
    assert "Passengers_lower" in out
    code, out, err = _run(capsys, ["forecast", "predict", str(model), "--horizon", "2", "--interval-method",
                                   "conformal"])                     # asked for by name: still refused
    assert code == 2 and "this model has no conformal calibration" in err


@pytest.mark.parametrize("value, hint", [
    ("10,000.00", " (thousands separators and decimal commas are not read: write 10000.5)"),
    ("100,5", " (thousands separators and decimal commas are not read: write 10000.5)"),
    ("10.0%", " (write percentages without the % sign)"),
    ("abc", ""),
])
def test_a_number_written_for_people_says_why_it_is_not_read(value, hint):
    with pytest.raises(DataError) as e:
        _series(["1", "2", "3"], values=["1", value, "2"])
    assert str(e.value) == f"column 'y' line 3: {value!r} is not a number{hint}; fix the value, or choose another column"


def test_hourly_dates_keep_their_time_at_midnight():
    """Hourly output mixed 2021-03-30 with 2021-03-30T01:00:00 in one column."""
    s = _series([f"2021-03-29T{h:02d}:00" for h in range(20, 24)] + ["2021-03-30T00:00", "2021-03-30T01:00"])
    assert [s.step.format(d) for d in s.dates[3:5]] == ["2021-03-29T23:00:00", "2021-03-30T00:00:00"]
    days = _series(["2021-03-28", "2021-03-29", "2021-03-30"])
    assert days.step.format(days.dates[0]) == "2021-03-28"                  # daily: the date alone, as before


def test_an_impossible_date_among_good_ones_is_not_sent_to_date_format():
    with pytest.raises(DataError, match=r"^column 'd' line 4: cannot read '2015-13-01' as a date; it is not a valid "
                                        r"date like the one before it \('2015-02-01' at line 3\)$"):
        _series(["2015-01-01", "2015-02-01", "2015-13-01", "2015-04-01"])
    with pytest.raises(DataError, match=r"line 2: cannot read '01/02/2015' as a date; give --date-format"):
        _series(["01/02/2015", "01/03/2015"])


def test_a_repeated_hour_suggests_utc_offsets():
    with pytest.raises(DataError, match=r"duplicate date 2021-10-31T02:00:00 at lines 4 and 5; keep one row per "
                                        r"date \(if the clocks went back at that hour, give the dates UTC offsets"):
        _series(["2021-10-31T00:00", "2021-10-31T01:00", "2021-10-31T02:00", "2021-10-31T02:00", "2021-10-31T03:00"])
    with pytest.raises(DataError, match=r"duplicate date 2021-10-31 at lines 4 and 5; keep one row per date$"):
        _series(["2021-10-29", "2021-10-30", "2021-10-31", "2021-10-31"])


def test_month_only_dates_keep_their_form_at_any_step_and_season():
    from rnnkit.forecast.defaults import guess_period
    s = _series([f"2013-{m}" for m in range(1, 10)])                       # unpadded months
    assert [s.step.format(d) for d in s.step.future(s.dates[-1], 2)] == ["2013-10", "2013-11"]
    s = _series([f"{2013 + i // 6}-{2 * (i % 6) + 1:02d}" for i in range(12)])   # every two months
    assert [s.step.format(d) for d in s.step.future(s.dates[-1], 2)] == ["2015-01", "2015-03"]
    assert guess_period(s.step) == 6                                         # a year of two-month steps


@pytest.mark.parametrize("style, text", [("{year}Q{q}", "2013Q1"), ("{year}-Q{q}", "2013-Q1"),
                                         ("{year} q{q}", "2013 q1"), ("Q{q} {year}", "Q1 2013"),
                                         ("Q{q}/{year}", "Q1/2013")])
def test_quarters_are_read_and_continued_in_the_files_own_style(style, text):
    from rnnkit.forecast.defaults import guess_period
    from rnnkit.forecast.dates import quarter_style
    assert quarter_style(text) == style
    quarters = [style.replace("{year}", str(2013 + i // 4)).replace("{q}", str(i % 4 + 1)) for i in range(10)]
    s = _series(quarters)
    assert s.notes == [] and s.step.kind == "months" and s.step.size == 3 and guess_period(s.step) == 4
    assert s.format_date(s.dates[1]) == quarters[1] and s.dates[1].month == 4      # a quarter is its first month
    want = [style.replace("{year}", y).replace("{q}", q) for y, q in (("2015", "3"), ("2015", "4"), ("2016", "1"))]
    assert [s.step.format(d) for d in s.step.future(s.dates[-1], 3)] == want


def test_a_missing_quarter_is_named_in_quarters_and_mixed_styles_write_iso_dates():
    quarters = [f"{2000 + i // 4}Q{i % 4 + 1}" for i in range(12)]
    (note,) = _series(quarters[:5] + quarters[7:]).notes
    assert "step of 3 months (the first: 2001Q1 at line 6, then 2001Q4 at line 7), 2 date(s) missing" in note, note
    mixed = _series(quarters[:6] + [q.replace("Q", "-Q") for q in quarters[6:]])
    assert mixed.notes == [] and mixed.step.quarter is None and mixed.step.format(mixed.dates[-1]) == "2002-10-01"
    for bad in ("2013Q5", "2013Q0", "13Q1", "2013QQ1"):
        with pytest.raises(DataError, match=f"line 4: cannot read '{bad}' as a date"):
            _series(quarters[:2] + [bad] + quarters[3:])


def test_date_format_with_quarters_says_they_need_none(tmp_path, capsys):
    data = tmp_path / "q.csv"
    data.write_text("Quarter,GDP\n" + "".join(f"{2000 + i // 4}Q{i % 4 + 1},{100 + i * 3 % 7}\n" for i in range(40)))
    code, out, err = _run(capsys, ["forecast", "train", str(data), "--date", "Quarter", "--target", "GDP",
                                   "--date-format", "%Y-%m", "--out", str(tmp_path / "m.npz")] + FAST)
    assert code == 2 and "line 2: cannot read '2000Q1' as a date; it does not match --date-format '%Y-%m'; " \
        "quarters like it are read without --date-format" in err, err
    assert _run(capsys, ["forecast", "train", str(data), "--date", "Quarter", "--target", "GDP",
                         "--out", str(tmp_path / "m.npz")] + FAST)[0] == 0
    code, out, err = _run(capsys, ["forecast", "predict", str(tmp_path / "m.npz"), str(data), "--horizon", "2",
                                   "--out", str(tmp_path / "f.csv")])
    assert code == 0 and "after 2009Q4" in out, out
    assert [r[0] for r in csv.reader(open(tmp_path / "f.csv"))][1:] == ["2010Q1", "2010Q2"]
