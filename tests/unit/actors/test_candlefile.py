"""Candle files: the format and its optional columns, one-line errors naming file and line, specs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from actors.core.candlespec import CANDLE_COLUMNS, CandleFileError, parse_spec
from actors.core.domain import OHLC, Candle
from actors.core.errors import TradehostError
from actors.core.timefmt import NS, parse_time
from actors.ml.candlefile import frame_from_candles, grid_problem, read_candle_file, read_candle_files

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

GOOD = """time,open,high,low,close,volume
2024-03-04T00:00:00Z,1.08500,1.08600,1.08400,1.08550,120
2024-03-04T01:00:00Z,1.08550,1.08700,1.08500,1.08650,98
2024-03-04T02:00:00Z,1.08650,1.08660,1.08300,1.08310,143
"""


def write(tmp_path: Path, text: str, name: str = "EUR_USD_H1.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_becomes_a_frame_indexed_by_bar_start_in_ns(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)

    candles = read_candle_file(path, instrument="EUR_USD")

    assert candles.instrument == "EUR_USD"
    assert candles.step_s == 3600
    assert candles.has_volume and not candles.has_spread
    frame = candles.frame
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert frame.index.name == "time" and frame.index.dtype == np.int64
    assert frame.index[0] == parse_time("2024-03-04T00:00:00Z")
    assert frame.iloc[2].tolist()[:5] == [1.0865, 1.0866, 1.083, 1.0831, 143.0]
    assert frame["spread"].isna().all()


def test_optional_columns_come_in_any_order_and_unknown_ones_are_ignored(tmp_path: Path) -> None:
    text = (
        "close,time,low,open,high,complete,spread\n"
        "1.1,1709510400,1.0,1.05,1.2,true,0.00012\n"
        "\n"
        "1.15,1709514000.0,1.1,1.1,1.2,true,0.00011\n"
        "\n"
    )

    candles = read_candle_file(write(tmp_path, text), instrument="EUR_USD")

    assert candles.has_spread and not candles.has_volume
    assert candles.frame["spread"].tolist() == [0.00012, 0.00011]
    assert candles.frame["volume"].isna().all()
    assert candles.frame.index[1] == 1709514000 * NS


def test_bid_and_ask_give_the_spread_at_the_close(tmp_path: Path) -> None:
    text = (
        "time,open,high,low,close,bid,ask\n"
        "2024-03-04T00:00:00Z,1,1,1,1,0.9999,1.0002\n"
        "2024-03-04T01:00:00Z,1,1,1,1,1.0,1.0001\n"
    )

    frame = read_candle_file(write(tmp_path, text), instrument="EUR_USD").frame

    np.testing.assert_allclose(frame["spread"], [0.0003, 0.0001])


HEADER = "time,open,high,low,close,volume\n"
ROW1 = "2024-03-04T00:00:00Z,1.0850,1.0860,1.0840,1.0855,10\n"
ROW2 = "2024-03-04T01:00:00Z,1.0855,1.0870,1.0850,1.0865,12\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("time,open,high,close\n" + ROW1, 1, "missing column 'low'"),
        ("time,open,high,low,close,close\n", 1, "appears twice"),
        (HEADER + ROW2 + ROW1, 3, "before the previous row"),
        (HEADER + ROW1 + ROW1, 3, "duplicate time 2024-03-04T00:00:00.000000000Z (first on line 2)"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,nan,1.0850,1.0865,12\n", 3, "high is nan, not a finite"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,inf,1.0850,1.0865,12\n", 3, "high is inf"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,0,1.0870,1.0850,1.0865,12\n", 3, "open 0 is not > 0"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,-1,1.0870,1.0850,1.0865,12\n", 3, "open -1 is not > 0"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,1.0840,1.0850,1.0845,12\n", 3, "high 1.084 is below low 1.085"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0900,1.0870,1.0850,1.0865,12\n", 3, "outside [low, high]"),
        (HEADER + ROW1 + "yesterday,1.0855,1.0870,1.0850,1.0865,12\n", 3, "time 'yesterday' is neither"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,1.08x,1.0850,1.0865,12\n", 3, "high '1.08x' is not a number"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,1.0870,1.0850\n", 3, "expected 6 fields"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,1.0870,1.0850,1.0865,-3\n", 3, "volume -3.0 is negative"),
        (HEADER + ROW1 + "2024-03-04T01:00:00Z,1.0855,1.0870,1.0850,1.0865,\n", 3, "volume '' is not a number"),
        ("time,open,high,low,close,bid\n", 1, "give both 'bid' and 'ask'"),
        ("time,open,high,low,close,bid,ask\n2024-03-04T00:00:00Z,1,1,1,1,1.1,1.0\n", 2, "need 0 < bid <= ask"),
        ("time,open,high,low,close,spread\n2024-03-04T00:00:00Z,1,1,1,1,-0.1\n", 2, "spread -0.1 is negative"),
        ("\n\n" + HEADER + "\n" + ROW1 + ROW1, 6, "duplicate time"),
    ],
)
def test_a_malformed_file_is_one_error_naming_the_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(CandleFileError) as caught:
        read_candle_file(path, instrument="EUR_USD")

    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert "\n" not in message
    assert isinstance(caught.value, TradehostError)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "empty file"), ("\n \n", "empty file"), (HEADER + ROW1, "at least two candles, found 1")],
)
def test_an_empty_or_one_candle_file_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(CandleFileError, match=fragment) as caught:
        read_candle_file(path, instrument="EUR_USD")

    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_or_binary_file_is_refused_with_its_path(tmp_path: Path) -> None:
    binary = tmp_path / "EUR_USD.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")

    with pytest.raises(CandleFileError, match=r"nope\.csv: cannot read"):
        read_candle_file(tmp_path / "nope.csv", instrument="EUR_USD")
    with pytest.raises(CandleFileError, match="not UTF-8"):
        read_candle_file(binary, instrument="EUR_USD")


def test_specs_name_the_instrument_explicitly_or_by_the_file_name() -> None:
    known = ["EUR_USD", "EUR_USD_X", "USD_JPY"]

    assert parse_spec("EUR_USD=data/any.csv", known=known) == ("EUR_USD", Path("data/any.csv"))
    assert parse_spec("GBP_USD=x.csv", known=known) == ("GBP_USD", Path("x.csv"))
    assert parse_spec("data/usd_jpy-h1.csv", known=known) == ("USD_JPY", Path("data/usd_jpy-h1.csv"))
    assert parse_spec("EUR_USD_X_M1.csv", known=known)[0] == "EUR_USD_X"
    with pytest.raises(CandleFileError, match="name the instrument as INSTRUMENT=PATH"):
        parse_spec("data/prices.csv", known=known)
    with pytest.raises(CandleFileError, match="not an instrument name"):
        parse_spec("eurusd=x.csv", known=known)
    with pytest.raises(CandleFileError, match="no path"):
        parse_spec("EUR_USD=", known=known)


def test_several_files_are_read_and_an_instrument_named_twice_is_refused(tmp_path: Path) -> None:
    eur = write(tmp_path, GOOD, "EUR_USD.csv")
    jpy = write(tmp_path, GOOD.replace("1.08", "150.08"), "jpy.csv")

    files = read_candle_files([str(eur), f"USD_JPY={jpy}"], known=["EUR_USD"])

    assert list(files) == ["EUR_USD", "USD_JPY"]
    assert files["USD_JPY"].frame["close"].iloc[0] == 150.0855
    with pytest.raises(CandleFileError, match="EUR_USD already comes from"):
        read_candle_files([str(eur), f"EUR_USD={jpy}"], known=["EUR_USD"])


def _ohlc(o: str, h: str, low: str, c: str) -> OHLC:
    return OHLC(o=Decimal(o), h=Decimal(h), l=Decimal(low), c=Decimal(c))


def test_broker_candles_become_the_same_frame_with_mid_prices_and_the_closing_spread() -> None:
    candles = [
        Candle(
            ts=1 * NS,
            volume=5,
            complete=True,
            bid=_ohlc("1.0", "1.2", "0.9", "1.1"),
            ask=_ohlc("1.2", "1.4", "1.1", "1.3"),
        ),
        Candle(ts=2 * NS, volume=6, complete=True, mid=_ohlc("1.1", "1.3", "1.0", "1.2")),
        Candle(ts=3 * NS, volume=1, complete=False, mid=_ohlc("1.2", "1.2", "1.2", "1.2")),
    ]

    frame = frame_from_candles(candles)

    assert list(frame.index) == [1 * NS, 2 * NS]
    np.testing.assert_allclose(frame.iloc[0].to_numpy(), [1.1, 1.3, 1.0, 1.2, 5.0, 0.2])
    assert frame.iloc[1, :5].tolist() == [1.1, 1.3, 1.0, 1.2, 6.0]
    assert np.isnan(frame["spread"].iloc[1])
    assert len(frame_from_candles(candles, complete_only=False)) == 3
    with pytest.raises(ValueError, match="neither mid nor bid and ask"):
        frame_from_candles([Candle(ts=NS, volume=1, complete=True)])


def _times(*texts: str) -> np.ndarray:
    return np.array([parse_time(t) for t in texts], dtype=np.int64)


@pytest.mark.parametrize(
    ("granularity", "times"),
    [
        # Daily bars at 17:00 New York: Wed, Thu, then Sun (the weekend between): one bar apart at the closest
        ("D", ("2024-03-06T22:00:00Z", "2024-03-07T22:00:00Z", "2024-03-10T21:00:00Z")),
        # Across the March DST change the UTC grid moves by an hour
        ("D", ("2024-03-07T22:00:00Z", "2024-03-08T22:00:00Z", "2024-03-10T21:00:00Z", "2024-03-11T21:00:00Z")),
        ("H4", ("2024-03-08T18:00:00Z", "2024-03-08T22:00:00Z", "2024-03-10T21:00:00Z", "2024-03-11T01:00:00Z")),
        ("M15", ("2024-03-06T14:00:00Z", "2024-03-06T14:15:00Z", "2024-03-06T15:00:00Z")),
    ],
)
def test_bars_of_the_granularity_pass_the_grid_check_even_in_short_files(
    granularity: str, times: tuple[str, ...]
) -> None:
    assert grid_problem("EUR_USD", _times(*times), granularity) is None


@pytest.mark.parametrize(
    ("granularity", "times", "words"),
    [
        ("M15", ("2024-03-06T14:00:00Z", "2024-03-06T14:30:00Z", "2024-03-06T15:00:00Z"), "bars are 1800 s apart"),
        ("M15", ("2024-03-06T14:00:07Z", "2024-03-06T14:15:07Z", "2024-03-06T14:30:07Z"), "is not on the M15 grid"),
        ("H4", ("2024-03-06T22:00:00Z", "2024-03-07T22:00:00Z", "2024-03-08T22:00:00Z"), "bars are 86400 s apart"),
    ],
)
def test_bars_of_another_granularity_are_named(granularity: str, times: tuple[str, ...], words: str) -> None:
    problem = grid_problem("EUR_USD", _times(*times), granularity)

    assert problem is not None and problem.startswith("EUR_USD: ") and words in problem


def test_a_candle_beyond_the_years_a_bar_time_can_hold_is_a_one_line_error(tmp_path: Path) -> None:
    # Bar times are int64 UTC nanoseconds (to 2262): year 9999 is named by file and line, no OverflowError.
    path = write(tmp_path, GOOD.replace("2024-03-04T02:00:00Z", "9999-03-04T02:00:00Z"))
    with pytest.raises(CandleFileError) as info:
        read_candle_file(path, instrument="EUR_USD")
    assert str(info.value).startswith(f"{path}:4: time 9999-03-04T02:00:00Z is out of range")
    assert "\n" not in str(info.value)


def test_a_utf8_byte_order_mark_before_the_header_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "EUR_USD_H1.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())  # as spreadsheet programs save "CSV UTF-8"
    candles = read_candle_file(path, instrument="EUR_USD")
    assert len(candles.frame) == 3 and candles.frame.index[0] == parse_time("2024-03-04T00:00:00Z")
