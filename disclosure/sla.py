"""The business-day calendar and deadline arithmetic.

Pure functions: no database, no clock. Callers pass the moment they care about, so every
case can be checked by hand (``business_deadline(received_at, 3)``) and tested without
faking time.

A business day is Monday to Friday in the programme's time zone (``TIME_ZONE``) that is not
a public holiday of the configured calendar (``HOLIDAYS_COUNTRY``/``HOLIDAYS_SUBDIVISION``,
England & Wales bank holidays by default, from the ``holidays`` package). A deadline of N
business days is the end (23:59:59 local time) of the Nth business day after the local
calendar day on which the clock started.
"""

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from django.conf import settings

END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=8)
def _holiday_calendar(country: str, subdivision: str):
    return holidays.country_holidays(country, subdiv=subdivision or None)


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def programme_zone() -> ZoneInfo:
    return _zone(settings.TIME_ZONE)


def is_business_day(day: date) -> bool:
    if day.weekday() >= 5:
        return False
    calendar = _holiday_calendar(settings.HOLIDAYS_COUNTRY, settings.HOLIDAYS_SUBDIVISION)
    return day not in calendar


def add_business_days(day: date, business_days: int) -> date:
    """The Nth business day after ``day`` (``day`` itself never counts)."""
    if business_days < 0:
        raise ValueError("business_days must not be negative")
    current, counted = day, 0
    while counted < business_days:
        current += timedelta(days=1)
        if is_business_day(current):
            counted += 1
    return current


def subtract_business_days(day: date, business_days: int) -> date:
    """The Nth business day before ``day`` (``day`` itself never counts)."""
    current, counted = day, 0
    while counted < business_days:
        current -= timedelta(days=1)
        if is_business_day(current):
            counted += 1
    return current


def local_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(programme_zone()).date()


def end_of_local_day(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=programme_zone())


def deadline_bands(now: datetime, warn_business_days: int) -> list[tuple[str, datetime | None, datetime | None]]:
    """The one rule for the badge of a running deadline, as ``(state, from, until)``: a
    deadline ``due`` is in the band where ``from <= due < until`` (None: unbounded).
    Overdue once passed; due today until the end of the local day; due soon until the end
    of the ``warn_business_days``-th business day after today; on track after that."""
    today = local_date(now)
    tomorrow = end_of_local_day(today) + timedelta(seconds=1)
    after_soon = end_of_local_day(add_business_days(today, warn_business_days)) + timedelta(seconds=1)
    return [("overdue", None, now), ("due_today", now, tomorrow), ("due_soon", tomorrow, after_soon),
            ("on_track", after_soon, None)]


def deadline_state(due: datetime, now: datetime, warn_business_days: int) -> str:
    """Which of ``deadline_bands`` a running deadline is in."""
    return next(state for state, start, until in deadline_bands(now, warn_business_days)
                if (start is None or due >= start) and (until is None or due < until))


def business_deadline(received_at: datetime, business_days: int) -> datetime:
    """End of the Nth business day after the local day of ``received_at`` (aware)."""
    return end_of_local_day(add_business_days(local_date(received_at), business_days))


def business_days_between(start: datetime, end: datetime) -> int:
    """Business days after the local day of ``start`` up to and including that of ``end``.

    A pause that starts and ends on the same local day costs nothing; paused on Monday and
    resumed on Wednesday costs two (Tuesday and Wednesday).
    """
    first, last = local_date(start), local_date(end)
    count, current = 0, first
    while current < last:
        current += timedelta(days=1)
        if is_business_day(current):
            count += 1
    return count


def extend_deadline(deadline: datetime, business_days: int) -> datetime:
    """Move a deadline on by whole business days, keeping it at the end of a local day."""
    return end_of_local_day(add_business_days(local_date(deadline), business_days))


def warning_time(deadline: datetime, business_days_before: int) -> datetime:
    """When to warn: the end of the business day ``business_days_before`` before the due day.

    With 1 (the default), a deadline at the end of Thursday is warned about from the first
    sweep on Thursday, when less than one business day is left.
    """
    if business_days_before <= 0:
        return deadline
    return end_of_local_day(subtract_business_days(local_date(deadline), business_days_before))
