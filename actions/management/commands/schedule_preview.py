"""Print the next slots of a rule given as options (docs/design.md 5.6.1)."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from actions.schedule import (
    Rule,
    can_ever_fire,
    default_zone,
    next_slots,
    parse_days,
    parse_months,
    parse_weekdays,
)


def _split(text: str) -> list[str]:
    return [part for part in (text or "").split(",") if part.strip()]


def parse_instant(text: str, tz) -> dt.datetime:
    """ISO 8601; without an offset it is local wall-clock time (a skipped time shifts)."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz, fold=0).astimezone(dt.UTC).astimezone(tz)
    return value


class Command(BaseCommand):
    help = (
        "Print the first N slots of a schedule rule strictly after --after (default: now), "
        "one ISO 8601 datetime with its UTC offset per line. Exit code 2 on an invalid rule."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", default="", help="days of month, e.g. 1,15,last")
        parser.add_argument("--weekdays", default="", help="e.g. mon,fri")
        parser.add_argument("--months", default="", help="e.g. 1,7")
        parser.add_argument("--start", required=True, help="ISO 8601; no offset = local time")
        parser.add_argument("--end", default=None, help="ISO 8601; optional (open ended)")
        parser.add_argument("--time", default=None, help="HH:MM; default: Start's local time")
        parser.add_argument("--after", default=None, help="ISO 8601; default: now")
        parser.add_argument("--count", type=int, default=10)

    def handle(self, *args, **options):
        tz = default_zone()
        try:
            start = parse_instant(options["start"], tz)
            end = parse_instant(options["end"], tz) if options["end"] else None
            after = parse_instant(options["after"], tz) if options["after"] else timezone.now()
            if options["time"]:
                time = dt.time.fromisoformat(options["time"].strip())
            else:
                time = start.astimezone(tz).time().replace(second=0, microsecond=0)
            rule = Rule(
                time=time,
                start=start,
                end=end,
                days=parse_days(_split(options["days"])),
                weekdays=parse_weekdays(_split(options["weekdays"])),
                months=parse_months(_split(options["months"])),
            )
        except ValueError as error:
            raise CommandError(f"Invalid rule: {error}", returncode=2) from error
        if options["count"] < 0:
            raise CommandError("Invalid rule: --count must not be negative", returncode=2)
        if not can_ever_fire(rule, tz):
            raise CommandError(
                "Invalid rule: it can never fire (no date matches days, weekdays and months "
                "together between Start and End).",
                returncode=2,
            )
        for slot in next_slots(rule, after, options["count"], tz):
            self.stdout.write(slot.astimezone(tz).isoformat())
