"""ganjax.progress: ETA arithmetic, line format, TTY redraw, zero / completed / resumed cases."""

import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganjax.progress import Progress, format_eta, format_rate


class Clock:
  """A fake monotonic clock the test advances by hand."""

  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def _bar(total, start=0, tty=False, desc="fit", unit="epoch"):
  clock, out = Clock(), io.StringIO()
  return Progress(total, desc, unit=unit, start=start, stream=out, tty=tty, clock=clock), clock, out


def test_format_eta():
  assert format_eta(0) == "0:00:00"
  assert format_eta(62) == "0:01:02"
  assert format_eta(3600 + 59.6) == "1:01:00"  # rounded to the second
  assert format_eta(90061) == "25:01:01"  # hours are not wrapped into days
  assert format_eta(-5) == "0:00:00"
  assert format_eta(math.inf) == "?" and format_eta(math.nan) == "?"


@given(st.integers(0, 10 ** 7))
def test_format_eta_roundtrip(s):
  h, m, sec = (int(p) for p in format_eta(s).split(":"))
  assert 0 <= m < 60 and 0 <= sec < 60 and 3600 * h + 60 * m + sec == s


def test_format_rate():
  assert format_rate(12.34, "epoch") == "12.3 epoch/s"
  assert format_rate(1234.5, "step") == "1,234 step/s"
  assert format_rate(0.25, "variant") == "4.0 s/variant"
  assert format_rate(math.nan, "epoch") == "? epoch/s"


def test_line_format_and_eta_math():
  bar, clock, out = _bar(100)
  clock.t += 10.0
  line = bar.update(40, d_loss=0.6931, member="3")
  # 40 epochs in 10 s -> 4 epoch/s; 60 left -> 15 s
  assert line == "[fit] 40/100 epoch | 4 epoch/s | ETA 0:00:15 | d_loss=0.6931 member=3"
  assert out.getvalue() == line + "\n"
  clock.t += 5.0
  bar.update(20)  # 60 in 15 s -> 4/s, 40 left -> 10 s
  assert bar.eta == pytest.approx(10.0)
  assert out.getvalue().splitlines()[-1] == "[fit] 60/100 epoch | 4 epoch/s | ETA 0:00:10"


def test_completed_reports_elapsed_and_caps_at_total():
  bar, clock, out = _bar(10)
  clock.t += 125.0
  line = bar.update(15)  # overshoot is capped
  assert bar.done == 10 and bar.eta == 0.0
  assert line == "[fit] 10/10 epoch | 12.5 s/epoch | done in 0:02:05"


def test_zero_total_and_no_progress_yet():
  bar, clock, out = _bar(0)
  assert bar.update(0) == "[fit] 0/0 epoch | ? epoch/s | done in 0:00:00"
  bar, clock, out = _bar(5)
  clock.t += 3.0
  assert bar.update(0) == "[fit] 0/5 epoch | ? epoch/s | ETA ?"  # rate unknown before the first unit
  assert math.isnan(bar.eta)


def test_resume_counts_only_this_session():
  bar, clock, out = _bar(100, start=90)
  clock.t += 2.0
  bar.update(5)  # 5 epochs in 2 s (not 95): 2.5/s, 5 left -> 2 s
  assert bar.rate == pytest.approx(2.5) and bar.eta == pytest.approx(2.0)
  assert out.getvalue().startswith("[fit] 95/100 epoch | 2.5 epoch/s | ETA 0:00:02")


def test_tty_redraws_in_place():
  bar, clock, out = _bar(3, tty=True)
  clock.t += 1.0
  first = bar.update(1, note="a longer postfix")
  clock.t += 1.0
  second = bar.update(1)
  text = out.getvalue()
  assert "\n" not in text and text.count("\r") == 2
  # the shorter second line blanks the tail of the first
  assert text.endswith("\r" + second + " " * (len(first) - len(second)))
  bar.close()
  assert out.getvalue().endswith("\n")
  bar2, clock2, out2 = _bar(1, tty=True)
  clock2.t += 1.0
  bar2.update(1)
  bar2.close()  # completed lines end themselves; close adds nothing
  assert out2.getvalue().count("\n") == 1


def test_default_stream_is_stderr(capsys):
  with Progress(2, "scan", unit="variant", tty=False) as bar:
    bar.update()
  err = capsys.readouterr().err
  assert err.startswith("[scan] 1/2 variant | ") and err.endswith("\n")


def test_bad_arguments():
  with pytest.raises(ValueError, match="start=5, total=3"):
    Progress(3, "x", start=5)
  with pytest.raises(ValueError, match="total=-1"):
    Progress(-1, "x")
