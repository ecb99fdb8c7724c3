"""`rnnkit forecast ...` through main(argv): real runs on small files, and every bad input a clear message."""

import calendar
import csv
import datetime as dt

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.forecast.data import read_series_csv
from rnnkit.forecast.dates import infer_step, parse_dates

FAST = ["--lookback", "6", "--hidden-size", "6", "--epochs", "2", "--no-progress"]


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _prices(tmp_path, n=80, name="prices.csv"):
    rng = np.random.default_rng(0)
    start = dt.date(2020, 1, 6)          # a Monday
    days = [start + dt.timedelta(days=i) for i in range(2 * n) if (start + dt.timedelta(days=i)).weekday() < 5][:n]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    vol = rng.integers(1000, 2000, n)
    rows = [[d.isoformat(), f"{c:.4f}", str(v)] for d, c, v in zip(days, close, vol)]
    return _write(tmp_path / name, ["Date", "Close", "Volume"], rows), rows


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_train_predict_backtest_session(tmp_path, capsys):
    data, rows = _prices(tmp_path)
    model = str(tmp_path / "m.npz")
    code, out, _ = _run(capsys, ["forecast", "train", data, "--date", "Date", "--target", "Close",
                                 "--past-covariates", "Volume", "--horizon", "3", "--transform", "log_return",
                                 "--strategy", "recursive",                    # predicts 4 steps below
                                 "--out", model, "--plot", str(tmp_path / "loss.png")] + FAST)
    assert code == 0, out
    assert "model written to" in out and (tmp_path / "loss.png").stat().st_size > 1000
    fc = tmp_path / "fc.csv"
    code, out, _ = _run(capsys, ["forecast", "predict", model, data, "--horizon", "4", "--out", str(fc),
                                 "--plot", str(tmp_path / "fc.png")])
    assert code == 0, out
    lines = fc.read_text().splitlines()
    assert lines[0] == "date,Close,Close_lower,Close_upper" and len(lines) == 5
    last = dt.date.fromisoformat(rows[-1][0])
    first = dt.date.fromisoformat(lines[1].split(",")[0])
    assert first > last and first.weekday() < 5                     # next business day
    vals = [float(v) for v in lines[2].split(",")[1:]]
    assert vals[1] <= vals[0] <= vals[2]
    # without data: from the end of the training series
    code, out, _ = _run(capsys, ["forecast", "predict", model, "--horizon", "2"])
    assert code == 0 and "forecast of Close for 2 step(s)" in out
    code, out, _ = _run(capsys, ["forecast", "backtest", data, "--target", "Close", "--horizon", "3",
                                 "--initial", "60", "--stride", "5", "--plot", str(tmp_path / "bt.png"),
                                 "--out", str(tmp_path / "metrics.csv")] + FAST)
    assert code == 0, out
    for word in ("model", "naive", "seasonal_naive", "drift", "mase", "seasonal period 5"):
        assert word in out
    assert (tmp_path / "bt.png").stat().st_size > 1000
    assert (tmp_path / "metrics.csv").read_text().startswith("method,")


def test_predict_says_which_steps_cannot_promise_the_coverage_and_prints_it_unrounded(tmp_path, capsys):
    # 0.999 printed as "with 100% intervals", and intervals from too few calibration forecasts went unmentioned
    from rnnkit.forecast import RNNForecaster
    data, _ = _prices(tmp_path)
    model = str(tmp_path / "m.npz")
    assert _run(capsys, ["forecast", "train", data, "--date", "Date", "--target", "Close", "--horizon", "3",
                         "--out", model] + FAST)[0] == 0
    est = RNNForecaster.load(model)
    for coverage in ("0.5", "0.999"):
        short = est.calibration_shortfall(float(coverage))
        code, out, err = _run(capsys, ["forecast", "predict", model, "--coverage", coverage])
        assert code == 0, err
        title = [line for line in out.splitlines() if line.startswith("forecast of Close")]
        assert title and title[0].endswith(f"with {float(coverage) * 100:g}% intervals:"), out
        notes = [line for line in (out + err).splitlines() if line.startswith("intervals: step")]
        if coverage == "0.999":
            assert short == [1, 2, 3] and len(notes) == 1, (short, out, err)
            lo, hi = min(map(len, est.calibration_)), max(map(len, est.calibration_))
            have = str(lo) if lo == hi else f"{lo}-{hi}"
            assert notes[0].startswith(f"intervals: steps 1-3 of 3 had {have} calibration forecast(s), fewer than the "
                                       "999 that 99.9% coverage needs"), notes
        else:
            assert short == [] and notes == [], (short, out, err)


def test_future_covariates_in_trailing_rows(tmp_path, capsys):
    rows = [[str(1990 + i), f"{10 + np.sin(i):.3f}", str(i % 4 == 0)] for i in range(40)]
    rows = [[d, v, "1" if f == "True" else "0"] for d, v, f in rows]
    data = _write(tmp_path / "y.csv", ["Year", "Value", "Flag"], rows)
    model = str(tmp_path / "m.npz")
    assert _run(capsys, ["forecast", "train", data, "--date", "Year", "--target", "Value",
                         "--future-covariates", "Flag", "--out", model] + FAST)[0] == 0
    code, _, err = _run(capsys, ["forecast", "predict", model, data, "--horizon", "2"])
    assert code == 2 and "add 2 trailing row(s)" in err
    data2 = _write(tmp_path / "y2.csv", ["Year", "Value", "Flag"], rows + [["2030", "", "1"], ["2031", "", "0"]])
    code, out, _ = _run(capsys, ["forecast", "predict", model, data2, "--horizon", "2"])
    assert code == 0 and "2030" in out and "2031" in out


@pytest.mark.parametrize("case,match", [
    ("missing_file", "no such file"),
    ("misspelled", "target column 'Clsoe' (--target) not found among the columns Date, Close, Volume; "
                   "did you mean 'Close'?"),
    ("text", "line 5: 'abc' is not a number"),
    ("missing", "missing values in column(s) 'Close' at line(s) 4 and 7"),
    ("unsorted", "dates are not sorted: line 4"),
    ("duplicate", "duplicate date 2020-01-07 at lines 3 and 4"),
    ("short", "too short for lookback 60 + horizon 5"),
    ("constant", "is constant"),
    ("inf", "infinite at line(s) 6"),
    ("nan_text", "missing values in column(s) 'Close' at line(s) 3"),
    ("bad_date", "cannot read '2020-13-45' as a date"),
    ("empty", "is empty"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, case, match):
    data, rows = _prices(tmp_path, n=30)
    rows = [list(r) for r in rows]
    argv_target = "Close"
    if case == "missing_file":
        data = str(tmp_path / "nope.csv")
    elif case == "misspelled":
        argv_target = "Clsoe"
    elif case == "text":
        rows[3][1] = "abc"
    elif case == "missing":
        rows[2][1] = rows[5][1] = ""
    elif case == "unsorted":
        rows[1], rows[2] = rows[2], rows[1]
    elif case == "duplicate":
        rows[2][0] = rows[1][0]
    elif case == "constant":
        for r in rows:
            r[1] = "5"
    elif case == "inf":
        rows[4][1] = "inf"
    elif case == "nan_text":
        rows[1][1] = "NaN"
    elif case == "bad_date":
        rows[0][0] = "2020-13-45"
    if case not in ("missing_file",):
        data = _write(tmp_path / "bad.csv", ["Date", "Close", "Volume"], rows)
    if case == "empty":
        (tmp_path / "bad.csv").write_text("")
    lookback = ["--lookback", "60", "--horizon", "5"] if case == "short" else ["--lookback", "6"]
    code, out, err = _run(capsys, ["forecast", "train", data, "--target", argv_target, "--out",
                                   str(tmp_path / "m.npz"), "--epochs", "1", "--no-progress"] + lookback)
    assert code == 2
    assert match in err, err


def test_fill_policies(tmp_path, capsys):
    data, rows = _prices(tmp_path, n=30)
    rows = [list(r) for r in rows]
    rows[3][1] = ""
    path = _write(tmp_path / "gaps.csv", ["Date", "Close", "Volume"], rows)
    for fill in ("ffill", "interpolate", "drop"):
        s = read_series_csv(path, date="Date", target="Close", fill=fill)
        assert np.isfinite(s.y).all() and len(s.y) == (29 if fill == "drop" else 30)
    s = read_series_csv(path, date="Date", target="Close", fill="ffill")
    assert s.y[3, 0] == float(rows[2][1])
    s = read_series_csv(path, date="Date", target="Close", fill="interpolate")
    assert s.y[3, 0] == pytest.approx((float(rows[2][1]) + float(rows[4][1])) / 2)
    code, out, _ = _run(capsys, ["forecast", "train", path, "--fill", "drop", "--out",
                                 str(tmp_path / "m.npz")] + FAST)
    assert code == 0


def test_bad_model_file_and_bad_flags(tmp_path, capsys):
    data, _ = _prices(tmp_path, n=30)
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    code, _, err = _run(capsys, ["forecast", "predict", str(junk), data])
    assert code == 2 and "not an rnnkit model file" in err
    code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"), "--lookback", "0"])
    assert code == 2 and "lookback (--lookback) must be" in err and "got 0" in err
    code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"), "--fill", "magic"])
    assert code == 2 and "argument --fill: invalid choice: 'magic'" in err
    for old in ("--seed", "--lr", "--valid-fraction"):            # the old names are gone
        code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"), old, "1"])
        assert code == 2 and f"unrecognized arguments: {old} 1" in err, (old, err)


@pytest.mark.parametrize("argv,expect", [
    (["train", "{data}", "--out", "{tmp}/m.npz", "--early-stopping-patience", "-1"],
     "early_stopping_patience (--early-stopping-patience) must be"),
    (["backtest", "{data}", "--max-folds", "-1"], "max_folds (--max-folds) must be"),
    (["train", "{data}", "--out", "{tmp}/m.npz", "--hidden-size", "0"], "hidden_size (--hidden-size) must be"),
    (["train", "{data}", "--out", "{tmp}/m.npz", "--random-state", "-3"], "random_state (--random-state) must be"),
    (["train", "{data}", "--out", "", "--epochs", "1"], "--out: the path is empty"),
    (["train", "{data}", "--out", "{data}"], "--out {data} is also the input DATA"),
    (["train", "{data}", "--out", "{tmp}/m.npz", "--plot", "{data}"], "--plot {data} is also the input DATA"),
    (["backtest", "{data}", "--out", "{data}"], "--out {data} is also the input DATA"),
    (["backtest", "{data}", "--plot", "{data}"], "--plot {data} is also the input DATA"),
    (["train", "{data}", "--out", "{tmp}/m.npz", "--resume"], "--resume: there is no checkpoint"),
    (["backtest", "{data}", "--stride", "0"], "stride (--stride) must be"),
    (["backtest", "{data}", "--refit", "-1"], "refit (--refit) must be"),
    (["backtest", "{data}", "--coverage", "1.5"], "coverage (--coverage) must be"),
    (["train", "{data}", "--out", "{tmp}"], "--out {tmp}: is a directory"),
    (["train", "{data}", "--out", "{tmp}/m.npz", "--plot", "{tmp}"], "--plot {tmp}: is a directory"),
    (["backtest", "{data}", "--out", "{tmp}"], "--out {tmp}: is a directory"),
    (["backtest", "{data}", "--seasonal-period", "0"], "seasonal_period (--seasonal-period) must be"),
    (["backtest", "{data}", "--initial", "4", "--seasonal-period", "5"],
     "backtest: --initial 4 gives the first fold 4 value(s), fewer than the season of 5 (--seasonal-period) that "
     "the seasonal naive baseline repeats; raise --initial to at least 5 or lower --seasonal-period"),
])
def test_bad_flags_and_outputs_are_refused_before_training(tmp_path, capsys, argv, expect):
    data, _ = _prices(tmp_path, n=30)
    fill = lambda a: a.replace("{data}", data).replace("{tmp}", str(tmp_path))
    code, out, err = _run(capsys, ["forecast"] + [fill(a) for a in argv] + ["--epochs", "1", "--lookback", "6"])
    assert code == 2 and fill(expect) in err and err.count("\n") == 1, err
    assert "trained" not in out + err and not list(tmp_path.rglob("*.npz"))
    assert (tmp_path / "prices.csv").read_text().startswith("Date,Close,Volume")       # the input is intact


def test_plot_path_without_extension_is_written_as_given(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data, _ = _prices(tmp_path, n=30)
    code, _, err = _run(capsys, ["forecast", "train", data, "--out", str(tmp_path / "m.npz"), "--plot",
                                 str(tmp_path / "curve"), "--lookback", "6"] + FAST)
    assert code == 0, err
    assert (tmp_path / "curve").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "curve.png").exists()


def test_future_dates_follow_the_data_step():
    monthly, kind = parse_dates(["1949-01", "1949-02", "1949-03"], "Month")
    step = infer_step(monthly, kind, raw=["1949-01", "1949-02", "1949-03"])
    assert [step.format(d) for d in step.future(monthly[-1], 11)][-2:] == ["1950-01", "1950-02"]
    years, kind = parse_dates(["1700", "1701", "1702"], "YEAR")
    step = infer_step(years, kind)
    assert step.future(years[-1], 2) == [1703, 1704]
    daily, kind = parse_dates(["2020-02-27", "2020-02-28", "2020-02-29"], "d")
    assert infer_step(daily, kind).future(daily[-1], 1)[0] == dt.datetime(2020, 3, 1)


def _month_ends(n, every=1, start=2019):
    ends = []
    for i in range(0, n * every, every):
        y, m = start + i // 12, i % 12 + 1
        ends.append(dt.date(y, m, calendar.monthrange(y, m)[1]).isoformat())
    return ends


@pytest.mark.parametrize("every, expect", [
    (1, ["2021-07-31", "2021-08-31", "2021-09-30", "2021-10-31", "2021-11-30", "2021-12-31", "2022-01-31",
         "2022-02-28"]),
    (3, ["2026-07-31", "2026-10-31", "2027-01-31", "2027-04-30", "2027-07-31", "2027-10-31", "2028-01-31",
         "2028-04-30"]),                                     # the last of the 30: 2026-04-30
])
def test_month_end_dates_continue_on_month_ends(every, expect):
    """Month ends were read as a step of 31 days (the most common gap) and drifted off the month's end."""
    raw = _month_ends(30, every)
    dates, kind = parse_dates(raw, "d")
    step = infer_step(dates, kind, raw=raw)
    assert (step.kind, step.size, step.day) == ("months", every, 31)
    assert [step.format(d) for d in step.future(dates[-1], 8)] == expect


def test_a_day_that_a_month_lacks_is_clamped_without_drifting():
    dates, kind = parse_dates(["2020-08-30", "2020-09-30", "2020-10-30", "2020-11-30", "2020-12-30"], "d")
    step = infer_step(dates, kind)
    assert step.day == 30 and [step.format(d) for d in step.future(dates[-1], 3)] == \
        ["2021-01-30", "2021-02-28", "2021-03-30"]


@pytest.mark.parametrize("day", [29, 30])
def test_monthly_dates_on_a_day_a_short_month_lacks_are_monthly(day):
    """2020-11-30, 2020-12-30, 2021-01-30, 2021-02-28, ...: once read as 31 days, drifting to 2022-03-02."""
    raw = [dt.date(2020 + (10 + i) // 12, (10 + i) % 12 + 1,
                   min(day, calendar.monthrange(2020 + (10 + i) // 12, (10 + i) % 12 + 1)[1])).isoformat()
           for i in range(15)]                                     # 2020-11 .. 2022-01, February clamped
    dates, kind = parse_dates(raw, "d")
    step = infer_step(dates, kind)
    assert (step.kind, step.size, step.day) == ("months", 1, day)
    assert [step.format(d) for d in step.future(dates[-1], 2)] == [f"2022-02-{min(day, 28)}", f"2022-03-{day}"]


def _weekday_of_month(y, m, last):
    d = dt.date(y, m, calendar.monthrange(y, m)[1] if last else 1)
    while d.weekday() >= 5:
        d += dt.timedelta(days=-1 if last else 1)
    return d.isoformat()


@pytest.mark.parametrize("last, anchor, expect", [
    (True, "last_bday", ["2019-01-31", "2019-02-28", "2019-03-29", "2019-06-28"]),    # 03-31 and 06-30: weekends
    (False, "first_bday", ["2019-01-01", "2019-02-01", "2019-03-01", "2019-06-03"]),  # 06-01 a Saturday
])
def test_monthly_dates_on_the_last_or_first_weekday_stay_on_it(last, anchor, expect):
    """Finance's month-end business days were read as a 31-day step: forecasts on 2019-03-03, a Sunday."""
    raw = [_weekday_of_month(2015 + i // 12, i % 12 + 1, last) for i in range(48)]
    dates, kind = parse_dates(raw, "d")
    step = infer_step(dates, kind)
    assert (step.kind, step.size, step.day) == ("months", 1, anchor)
    got = [step.format(d) for d in step.future(dates[-1], 6)]
    assert got[:3] + got[5:] == expect
    from rnnkit.forecast.dates import gap_note
    assert gap_note(dates, step) is None


def test_one_mistyped_day_keeps_a_monthly_series_monthly_and_is_named():
    raw = [f"{2015 + i // 12}-{i % 12 + 1:02d}-01" for i in range(48)]
    raw[16] = "2016-05-02"
    from rnnkit.forecast.data import series_from_columns
    s = series_from_columns({"d": raw, "y": [str(i % 7 + i) for i in range(48)]}, date="d", target="y")
    assert (s.step.kind, s.step.day) == ("months", 1)
    assert s.notes == ["1 date(s) are not on day 1 of the month like the others (the first: 2016-05-02 at line 18); "
                       "check them"], s.notes
    assert [s.step.format(d) for d in s.step.future(s.dates[-1], 3)] == ["2019-01-01", "2019-02-01", "2019-03-01"]


def test_days_near_a_month_end_are_not_mistaken_for_months():
    for raw in (["2021-02-27", "2021-02-28", "2021-03-01"], ["2020-02-28", "2020-02-29"], ["2021-04-30", "2021-05-01"]):
        dates, kind = parse_dates(raw, "d")
        assert infer_step(dates, kind).kind != "months", raw


def test_a_float_time_index_steps_by_its_rounded_difference():
    raw = [f"{1600000000 + 0.1 * i:.1f}" for i in range(20)]       # float sums are off in the 7th digit
    dates, kind = parse_dates(raw, "t")
    step = infer_step(dates, kind)
    assert step.size == 0.1 and [step.format(d) for d in step.future(dates[-1], 2)] == ["1600000002", "1600000002.1"]
    from rnnkit.forecast.dates import gap_note
    assert gap_note(dates, step) is None


def test_a_tie_between_gaps_goes_to_the_shortest():
    dates, kind = parse_dates(["2020-01-01", "2020-01-04", "2020-01-05", "2020-01-07"], "d")   # 3, 1, 2 days
    assert infer_step(dates, kind).size == 86400


def test_a_step_of_zero_is_one_line_not_a_division_by_zero():
    from rnnkit.errors import DataError
    dates, kind = parse_dates(["2021-10-31T02:00+02:00", "2021-10-31T02:00+01:00"], "d")   # one wall time twice
    step = infer_step(dates, kind)
    assert (step.kind, step.size) == ("seconds", 3600)
    dates, kind = parse_dates(["2021-10-31T02:00+02:00", "2021-10-31T02:00+01:00", "2021-10-31T03:00+01:00"], "d")
    assert infer_step(dates, kind).size == 3600
    dates, kind = parse_dates(["0", "1e-10", "2e-10", "3e-10"], "t")
    assert infer_step(dates, kind).size == pytest.approx(1e-10)
    with pytest.raises(DataError, match="need at least two dates"):
        infer_step(dates[:1], kind)


def test_month_end_series_round_trip_through_the_model_file(tmp_path, capsys):
    raw = _month_ends(40)
    rng = np.random.default_rng(0)
    data = _write(tmp_path / "m.csv", ["Date", "Value"],
                  [[d, f"{100 + 10 * np.sin(i / 2) + rng.normal():.3f}"] for i, d in enumerate(raw)])
    model, fc = str(tmp_path / "m.npz"), tmp_path / "fc.csv"
    code, out, err = _run(capsys, ["forecast", "train", data, "--date", "Date", "--target", "Value",
                                   "--out", model] + FAST)
    assert code == 0 and "not evenly spaced" not in out + err, out + err
    assert "seasonal period 12 from the dates" in out + err, out + err
    code, out, _ = _run(capsys, ["forecast", "predict", model, "--horizon", "3", "--out", str(fc)])
    assert code == 0, out
    assert [r.split(",")[0] for r in fc.read_text().splitlines()[1:]] == ["2022-05-31", "2022-06-30", "2022-07-31"]

    # a model file written before month ends were months recorded them as a step of 31 days: read as months
    from rnnkit.io.modelfile import load_model_file, save_model_file
    m = load_model_file(model)
    m.config["fitted"]["series"]["step"] = {"kind": "seconds", "size": 2678400.0, "fmt": None, "month_only": False}
    old = tmp_path / "old.npz"
    save_model_file(old, kind=m.kind, config=m.config, arrays=m.arrays, meta=m.meta)
    code, out, _ = _run(capsys, ["forecast", "predict", str(old), data, "--horizon", "2"])
    assert code == 0 and "not evenly spaced" not in out and "trained on steps" not in out, out
    code, out, _ = _run(capsys, ["forecast", "predict", str(old), "--horizon", "3"])
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("forecast of Value"))   # after any notes
    assert code == 0 and ["2022-05-31", "2022-06-30", "2022-07-31"] == [r.split()[0] for r in lines[title + 2:
                                                                                                   title + 5]]
    # the same months dated on the first: the same step, no note
    first = _write(tmp_path / "first.csv", ["Date", "Value"],
                   [[d[:8] + "01", v] for d, v in (r.split(",") for r in open(data).read().splitlines()[1:])])
    code, out, _ = _run(capsys, ["forecast", "predict", model, first, "--horizon", "2"])
    assert code == 0 and "trained on steps" not in out and "2022-05-01" in out, out


def test_predict_reads_a_short_file_with_the_models_step_when_it_fits(tmp_path, capsys):
    """Five weekdays read as daily: a business-day model forecast Saturday and Sunday, with a false note."""
    data, _ = _prices(tmp_path, n=60)
    model = str(tmp_path / "m.npz")
    assert _run(capsys, ["forecast", "train", data, "--date", "Date", "--target", "Close", "--out", model]
                + FAST + ["--lookback", "3"])[0] == 0
    week = _write(tmp_path / "week.csv", ["Date", "Close", "Volume"],                       # Monday .. Friday
                  [[f"2021-01-0{d}", str(100 + d % 3), "1000"] for d in range(4, 9)])
    code, out, _ = _run(capsys, ["forecast", "predict", model, week, "--horizon", "3"])
    assert code == 0 and "trained on steps" not in out, out
    assert [r.split()[0] for r in out.splitlines()[3:6]] == ["2021-01-11", "2021-01-12", "2021-01-13"], out


def test_fits_a_step():
    from rnnkit.forecast.dates import DateStep, fits
    days, kind = parse_dates(["2021-01-07", "2021-01-08", "2021-01-11"], "d")             # Thu, Fri, Mon
    assert fits(days, DateStep("bdays", 1)) and not fits(days, DateStep("seconds", 86400.0))
    months, kind = parse_dates(["2021-01-31", "2021-02-28", "2021-03-31"], "d")
    assert fits(months, DateStep("months", 1, day=31)) and not fits(months, DateStep("months", 1, day=1))
    assert not fits([1.0, 2.0], DateStep("months", 1)) and fits([1.0, 2.0], DateStep("number", 1.0))
