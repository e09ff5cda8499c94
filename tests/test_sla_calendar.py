"""The business-day calendar: the policy's examples and the hard cases."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.test import SimpleTestCase, override_settings

from disclosure.sla import (
    add_business_days,
    business_days_between,
    business_deadline,
    is_business_day,
    warning_time,
)
from tests.base import LONDON, end_of


def utc(*args):
    return datetime(*args, tzinfo=UTC)



class PolicyExamplesTests(SimpleTestCase):
    def test_received_on_a_monday(self):
        received = utc(2026, 11, 30, 10, 0)
        self.assertEqual(business_deadline(received, 3), end_of(2026, 12, 3))
        self.assertEqual(business_deadline(received, 10), end_of(2026, 12, 14))

    def test_received_on_a_saturday(self):
        self.assertEqual(business_deadline(utc(2026, 11, 28, 15, 0), 3), end_of(2026, 12, 2))

    def test_received_on_christmas_eve(self):
        received = utc(2026, 12, 24, 17, 0)
        self.assertEqual(business_deadline(received, 3), end_of(2026, 12, 31))  # 25 and 28 Dec are holidays
        self.assertEqual(business_deadline(received, 10), end_of(2027, 1, 12))


class HardCasesTests(SimpleTestCase):
    def test_result_is_aware_and_in_the_programme_zone(self):
        deadline = business_deadline(utc(2026, 11, 30, 10, 0), 3)
        self.assertEqual(deadline.tzinfo, LONDON)
        self.assertEqual(deadline.astimezone(UTC), utc(2026, 12, 3, 23, 59, 59))

    def test_naive_datetimes_are_refused(self):
        with self.assertRaises(ValueError):
            business_deadline(datetime(2026, 11, 30, 10, 0), 3)

    def test_easter_and_the_start_of_summer_time(self):
        # Good Friday 26 and Easter Monday 29 March 2027 are bank holidays; clocks go
        # forward on Sunday 28 March, so the deadline is 23:59:59 BST.
        deadline = business_deadline(utc(2027, 3, 25, 12, 0), 3)
        self.assertEqual(deadline, end_of(2027, 4, 1))
        self.assertEqual(deadline.utcoffset(), timedelta(hours=1))
        self.assertEqual(deadline.astimezone(UTC), utc(2027, 4, 1, 22, 59, 59))

    def test_the_end_of_summer_time(self):
        deadline = business_deadline(utc(2026, 10, 23, 9, 0), 3)  # clocks go back Sun 25 Oct
        self.assertEqual(deadline, end_of(2026, 10, 28))
        self.assertEqual(deadline.utcoffset(), timedelta(0))

    def test_receipt_just_before_and_after_local_midnight(self):
        # 22:30 UTC on Tue 30 June is 23:30 BST on Tuesday; 23:30 UTC is 00:30 BST on Wednesday.
        self.assertEqual(business_deadline(utc(2026, 6, 30, 22, 30), 3), end_of(2026, 7, 3))
        self.assertEqual(business_deadline(utc(2026, 6, 30, 23, 30), 3), end_of(2026, 7, 6))

    def test_receipt_in_the_last_second_of_a_business_day(self):
        self.assertEqual(business_deadline(end_of(2026, 12, 1), 1), end_of(2026, 12, 2))

    def test_new_year_and_boxing_day_substitutes(self):
        self.assertFalse(is_business_day(date(2027, 12, 27)))  # Christmas Day (observed)
        self.assertFalse(is_business_day(date(2027, 12, 28)))  # Boxing Day (observed)
        self.assertFalse(is_business_day(date(2028, 1, 3)))  # New Year's Day (observed)
        self.assertEqual(add_business_days(date(2027, 12, 24), 1), date(2027, 12, 29))

    @override_settings(TIME_ZONE="America/New_York", HOLIDAYS_COUNTRY="US", HOLIDAYS_SUBDIVISION="")
    def test_calendar_and_zone_are_settings(self):
        new_york = ZoneInfo("America/New_York")
        # Thanksgiving, Thursday 26 November 2026.
        received = datetime(2026, 11, 25, 9, 0, tzinfo=new_york)
        self.assertEqual(business_deadline(received, 2), end_of(2026, 11, 30, new_york))
        # 2 a.m. UTC on Tuesday is still Monday evening in New York.
        self.assertEqual(business_deadline(utc(2026, 12, 1, 2, 0), 1), end_of(2026, 12, 1, new_york))

    def test_business_days_between(self):
        monday = utc(2026, 11, 30, 9, 0)
        self.assertEqual(business_days_between(monday, monday + timedelta(hours=5)), 0)
        self.assertEqual(business_days_between(monday, utc(2026, 12, 2, 9, 0)), 2)
        self.assertEqual(business_days_between(utc(2026, 12, 24, 9, 0), utc(2026, 12, 29, 9, 0)), 1)

    def test_warning_time_is_the_end_of_the_previous_business_day(self):
        self.assertEqual(warning_time(end_of(2026, 12, 3), 1), end_of(2026, 12, 2))
        self.assertEqual(warning_time(end_of(2026, 12, 7), 1), end_of(2026, 12, 4))  # over a weekend
        self.assertEqual(warning_time(end_of(2026, 12, 7), 0), end_of(2026, 12, 7))
