"""Fill the database with realistic German demo data for calmail's reports and recipients.

`make run` calls this on every start: the first start seeds a small set, later starts
find it and add nothing. Everything is generated from --seed, so the same seed on the
same day gives the same data; due dates are spread around today (some overdue, some due
within 30 days, most later). Rows go in with bulk inserts in batches, so 100,000
instruments take seconds, not minutes.
"""

import datetime
import random
import time
from dataclasses import dataclass
from itertools import islice

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from calmail.common.teams import ensure_default_team
from inventory import services
from inventory.models import (
    Customer,
    CustomerContact,
    DistributionList,
    Instrument,
    Language,
    Location,
    SupportTicket,
    SystemAddress,
    TicketStatus,
    UserProfile,
    compute_next_due_date,
)

DEMO_DOMAIN = "calserver.example"
# (username, first name, last name, language)
DEMO_USERS = (
    ("m.mustermann", "Max", "Mustermann", "de"),
    ("e.musterfrau", "Erika", "Musterfrau", "de"),
    ("j.becker", "Jonas", "Becker", "de"),
    ("l.schmidt", "Lena", "Schmidt", "de"),
    ("t.wagner", "Thomas", "Wagner", "de"),
    ("s.klein", "Sarah", "Klein", "en"),
)
SURNAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
    "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange",
    "Werner", "Krause", "Lehmann", "Köhler", "Herrmann", "König", "Walter", "Huber",
    "Kaiser", "Fuchs", "Peters", "Scholz", "Möller", "Weiß", "Jung", "Hahn",
)  # fmt: skip
BRANCHES = (
    "Messtechnik", "Präzisionstechnik", "Maschinenbau", "Kunststofftechnik", "Automotive",
    "Labortechnik", "Elektronik", "Anlagenbau", "Medizintechnik", "Feinmechanik",
    "Prüftechnik", "Umwelttechnik", "Lebensmitteltechnik", "Pharma", "Hydraulik",
)  # fmt: skip
LEGAL_FORMS = ("GmbH", "GmbH", "GmbH", "GmbH & Co. KG", "AG", "KG", "e.K.", "SE")
CITIES = (
    "Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf",
    "Leipzig", "Dortmund", "Essen", "Bremen", "Dresden", "Hannover", "Nürnberg", "Bochum",
    "Bielefeld", "Bonn", "Münster", "Karlsruhe", "Mannheim", "Augsburg", "Wiesbaden",
    "Freiburg im Breisgau", "Ulm", "Jena", "Regensburg", "Kiel", "Rostock", "Würzburg",
    "Göttingen", "Paderborn", "Heilbronn", "Ingolstadt", "Wolfsburg", "Erlangen", "Chemnitz",
)  # fmt: skip
MAILBOXES = ("kalibrierung", "einkauf", "qs", "labor", "service", "technik")
FIRST_NAMES = ("Anna", "Lukas", "Sophie", "Felix", "Marie", "Paul", "Laura", "Jan", "Julia", "Tim")
LOCATION_NAMES = (
    "Hauptwerk", "Werk 2", "Prüflabor", "Messraum", "Qualitätssicherung", "Wareneingang",
    "Fertigung Halle 3", "Entwicklung", "Instandhaltung", "Außenlager",
)  # fmt: skip
# (description, manufacturer, model, serial prefix)
INSTRUMENT_TYPES = (
    ("Digitalmultimeter", "Fluke", "87V", "FL"),
    ("Digitalmultimeter", "Fluke", "179", "FL"),
    ("Digitalmultimeter", "Keysight", "U1282A", "MY"),
    ("Tischmultimeter", "Keysight", "34465A", "MY"),
    ("Digitalmultimeter", "Gossen Metrawatt", "METRAHIT 29S", "GM"),
    ("Bügelmessschraube", "Mitutoyo", "293-240-30", "MI"),
    ("Bügelmessschraube", "Mahr", "Micromar 40 EWR", "MA"),
    ("Messschieber", "Mitutoyo", "500-196-30", "MI"),
    ("Messschieber", "Mahr", "MarCal 16 EWR", "MA"),
    ("Drehmomentschlüssel", "Stahlwille", "MANOSKOP 730/10", "SW"),
    ("Drehmomentschlüssel", "Hazet", "5122-2CT", "HZ"),
    ("Temperaturmessgerät", "Testo", "735-2", "TE"),
    ("Thermometer", "Testo", "110", "TE"),
    ("Referenzthermometer", "Fluke", "1524", "FL"),
    ("Feuchtemessgerät", "Testo", "635-2", "TE"),
    ("Druckmessumformer", "Endress+Hauser", "Cerabar PMP71", "EH"),
    ("Differenzdruckmessumformer", "Endress+Hauser", "Deltabar PMD75", "EH"),
    ("Durchflussmessgerät", "Endress+Hauser", "Promag 10W", "EH"),
    ("Manometer", "WIKA", "232.50", "WI"),
    ("Oszilloskop", "Keysight", "DSOX1204G", "MY"),
    ("Oszilloskop", "Rohde & Schwarz", "RTB2004", "RS"),
    ("Präzisionswaage", "Sartorius", "Quintix 224-1S", "SA"),
    ("Analysenwaage", "Mettler Toledo", "XS205", "MT"),
    ("Isolationsmessgerät", "Fluke", "1587 FC", "FL"),
    ("Endmaßsatz", "Mitutoyo", "516-940-10", "MI"),
    ("Schallpegelmesser", "Brüel & Kjær", "2250", "BK"),
    ("pH-Meter", "Mettler Toledo", "SevenCompact S220", "MT"),
    ("Kolbenhubpipette", "Eppendorf", "Research plus", "EP"),
)
INTERVALS = (6, 12, 12, 12, 12, 24, 24, 36)
TICKET_SUBJECTS = (
    "Kalibrierschein fehlt für {inventory}",
    "Rückfrage zum Prüfprotokoll {inventory}",
    "Termin für Vor-Ort-Kalibrierung",
    "Messabweichung bei {description}",
    "Angebot für Rekalibrierung",
    "{description} defekt, Reparatur anfragen",
    "DAkkS-Kalibrierung gewünscht",
    "Abholung und Versand vereinbaren",
    "Rechnungskorrektur Kalibrierauftrag",
)
UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


@dataclass(frozen=True)
class Counts:
    customers: int
    instruments: int
    tickets: int


def slug(text: str) -> str:
    """ "Müller Messtechnik" -> "mueller-messtechnik": for demo domain names."""
    words = "".join(c if c.isalnum() else " " for c in text.lower().translate(UMLAUTS)).split()
    return "-".join(words)


def batched(iterable, size: int):
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch


def due_offset(rng: random.Random) -> int:
    """Days from today to a due date: about 8 % overdue, 12 % due within 30 days, the
    rest later (up to two years)."""
    roll = rng.random()
    if roll < 0.08:
        return -rng.randint(1, 180)
    if roll < 0.20:
        return rng.randint(0, 30)
    return rng.randint(31, 730)


def _next_number(values, prefix: str) -> int:
    numbers = [int(value[len(prefix) :]) for value in values if value[len(prefix) :].isdigit()]
    return max(numbers, default=0) + 1


class Command(BaseCommand):
    help = (
        "Fill the database with German demo data: customers with contact addresses, "
        "locations, instruments (due dates around today), support tickets, demo users with "
        "profiles, two distribution lists of the first team and two system addresses. Runs "
        "once: if customers exist it adds nothing, unless --more is given, which adds another "
        "set of the given size. Deterministic for a --seed on a given day. For DEBUG=true "
        "demos."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=12, help="default: %(default)s")
        parser.add_argument("--instruments", type=int, default=300, help="default: %(default)s")
        parser.add_argument("--tickets", type=int, default=40, help="default: %(default)s")
        parser.add_argument(
            "--seed", type=int, default=4711, help="random seed (default: %(default)s)"
        )
        parser.add_argument(
            "--more",
            action="store_true",
            help="Add another set even though demo data exists (new numbers follow the existing).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="rows per bulk insert batch"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even though DEBUG is off. Demo customers do not belong in production.",
        )

    def handle(self, *args, **options):
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo fills the database with made-up customers and runs only with "
                "DEBUG=true (or pass --force)."
            )
        counts = Counts(options["customers"], options["instruments"], options["tickets"])
        if min(counts.customers, counts.instruments, counts.tickets) < 0:
            raise CommandError("Counts cannot be negative.")
        if (counts.instruments or counts.tickets) and not counts.customers:
            raise CommandError("Instruments and tickets need at least one customer.")
        existing = Customer.objects.count()
        if existing and not options["more"]:
            self.stdout.write(
                f"Demo data is already there ({existing} customers, "
                f"{Instrument.objects.count()} instruments, {SupportTicket.objects.count()} "
                "tickets): nothing added. --more adds another set."
            )
            return
        started = time.monotonic()
        # A string seed is hashed deterministically; the existing count makes a --more set
        # differ from the first.
        rng = random.Random(f"{options['seed']}:{existing}")  # noqa: S311 - demo data, not secrets
        with transaction.atomic():
            Seeder(rng, batch_size=options["batch_size"]).run(counts, first=not existing)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {counts.customers} customers, {counts.instruments} instruments and "
                f"{counts.tickets} tickets in {time.monotonic() - started:.1f} s."
            )
        )


class Seeder:
    def __init__(self, rng: random.Random, *, batch_size: int):
        self.rng = rng
        self.batch_size = batch_size
        self.today = timezone.localdate()

    def run(self, counts: Counts, *, first: bool) -> None:
        users = self.users()
        customers = self.customers(counts.customers)
        locations = self.locations(customers, users)
        self.instruments(counts.instruments, customers, locations, users)
        self.tickets(counts.tickets, customers, users)
        if first:
            self.recipients(customers, users)

    def users(self) -> list:
        user_model = get_user_model()
        users = []
        for username, first_name, last_name, language in DEMO_USERS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                # Recipients only: they never log in, so they get no usable password.
                user = user_model(
                    username=username,
                    first_name=first_name,
                    last_name=last_name,
                    email=f"{username}@{DEMO_DOMAIN}",
                )
                user.set_unusable_password()
                user.save()
            UserProfile.objects.get_or_create(user=user, defaults={"language": language})
            users.append(user)
        return users

    def customers(self, count: int) -> list[Customer]:
        rng = self.rng
        start = max(_next_number(Customer.objects.values_list("number", flat=True), ""), 10001)
        customers, contacts = [], []
        for index in range(count):
            surname, branch = rng.choice(SURNAMES), rng.choice(BRANCHES)
            name = f"{surname} {branch} {rng.choice(LEGAL_FORMS)}"
            english = rng.random() < 0.15
            customers.append(
                Customer(
                    number=str(start + index),
                    name=name,
                    language=Language.ENGLISH if english else Language.GERMAN,
                    city=rng.choice(CITIES),
                )
            )
        customers = Customer.objects.bulk_create(customers, batch_size=self.batch_size)
        for customer in customers:
            domain = f"{slug(customer.name.split()[0])}-{slug(customer.name.split()[1])}.example"
            # A few customers have no address yet, as in real data: they are not mailable.
            n_contacts = rng.choices((0, 1, 2, 3), weights=(3, 57, 30, 10))[0]
            used = set()
            for position, mailbox in enumerate(rng.sample(MAILBOXES, n_contacts)):
                contact_name = ""
                if rng.random() < 0.4:
                    first_name, last_name = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
                    personal = f"{first_name[0]}.{last_name}".lower().translate(UMLAUTS)
                    if personal not in used:
                        contact_name, mailbox = f"{first_name} {last_name}", personal
                used.add(mailbox)
                contacts.append(
                    CustomerContact(
                        customer=customer,
                        email=f"{mailbox}@{domain}",
                        name=contact_name,
                        position=position,
                    )
                )
        CustomerContact.objects.bulk_create(contacts, batch_size=self.batch_size)
        return customers

    def locations(self, customers, users) -> dict[int, list[Location]]:
        rng = self.rng
        locations = []
        for customer in customers:
            for name in rng.sample(LOCATION_NAMES, rng.randint(1, 3)):
                locations.append(
                    Location(
                        name=name,
                        customer=customer,
                        responsible=rng.choice(users),
                        city=customer.city,
                    )
                )
        locations = Location.objects.bulk_create(locations, batch_size=self.batch_size)
        by_customer: dict[int, list[Location]] = {}
        for location in locations:
            by_customer.setdefault(location.customer_id, []).append(location)
        return by_customer

    def _instrument_rows(self, count, customers, locations, users):
        rng, today = self.rng, self.today
        start = _next_number(
            Instrument.objects.filter(inventory_number__startswith="INV-").values_list(
                "inventory_number", flat=True
            ),
            "INV-",
        )
        for index in range(count):
            customer = rng.choice(customers)
            description, manufacturer, model, prefix = rng.choice(INSTRUMENT_TYPES)
            interval = rng.choice(INTERVALS)
            location = None if rng.random() < 0.05 else rng.choice(locations[customer.pk])
            roll = rng.random()
            if location is not None and roll < 0.8:
                responsible_id = location.responsible_id
            elif roll < 0.95:
                responsible_id = rng.choice(users).pk
            else:
                responsible_id = None
            last_calibration = None
            # About one in a hundred is new and has never been calibrated.
            if rng.random() >= 0.01:
                due = today + datetime.timedelta(days=due_offset(rng))
                last_calibration = due - relativedelta(months=interval)
            yield Instrument(
                inventory_number=f"INV-{start + index:07d}",
                description=description,
                manufacturer=manufacturer,
                model=model,
                serial_number=f"{prefix}{rng.randrange(10**7, 10**8)}",
                customer_id=customer.pk,
                location_id=location.pk if location else None,
                responsible_id=responsible_id,
                last_calibration=last_calibration,
                calibration_interval_months=interval,
                # bulk_create skips Instrument.save(): compute the due date the same way.
                next_due_date=compute_next_due_date(last_calibration, interval),
            )

    def instruments(self, count, customers, locations, users) -> None:
        rows = self._instrument_rows(count, customers, locations, users)
        for batch in batched(rows, self.batch_size):
            Instrument.objects.bulk_create(batch)

    def tickets(self, count, customers, users) -> None:
        rng, today = self.rng, self.today
        start = _next_number(
            SupportTicket.objects.filter(number__startswith="T-").values_list("number", flat=True),
            "T-",
        )
        zone = timezone.get_current_timezone()

        def rows():
            for index in range(count):
                description = rng.choice(INSTRUMENT_TYPES)[0]
                # Opened in the last three months, due days to weeks later: some are overdue.
                opened = today - datetime.timedelta(days=rng.randint(0, 90))
                due = opened + datetime.timedelta(days=rng.randint(5, 120))
                created = datetime.datetime.combine(
                    opened,
                    datetime.time(rng.randint(7, 17), rng.randint(0, 59)),
                    tzinfo=zone,
                )
                subject = rng.choice(TICKET_SUBJECTS).format(
                    inventory=f"INV-{rng.randint(1, max(1, start + index)):07d}",
                    description=description,
                )
                yield SupportTicket(
                    number=f"T-{start + index:06d}",
                    subject=subject,
                    status=TicketStatus.OPEN if rng.random() < 0.65 else TicketStatus.CLOSED,
                    customer_id=rng.choice(customers).pk,
                    assignee_id=None if rng.random() < 0.1 else rng.choice(users).pk,
                    created_at=created,
                    due_date=due,
                )

        for batch in batched(rows(), self.batch_size):
            SupportTicket.objects.bulk_create(batch)

    def recipients(self, customers, users) -> None:
        """Two distribution lists (owned by the first team, made if there is none) and two
        system addresses, through the services."""
        team, _created = ensure_default_team()
        mailable = list(
            Customer.objects.filter(pk__in=[c.pk for c in customers], contacts__isnull=False)
            .distinct()
            .order_by("number")[:5]
        )
        if not DistributionList.objects.filter(name__iexact="Qualitätssicherung").exists():
            services.distribution_list_create(
                name="Qualitätssicherung",
                owner_group=team,
                description="QS-Team und Ansprechpartner der wichtigsten Kunden",
                users=users[:2],
                customers=mailable[:2],
                addresses=[
                    services.AddressEntry(f"qs-leitung@{DEMO_DOMAIN}", "QS-Leitung"),
                ],
            )
        if not DistributionList.objects.filter(name__iexact="Kalibrier-Newsletter").exists():
            services.distribution_list_create(
                name="Kalibrier-Newsletter",
                owner_group=team,
                description="Kunden, die über Kalibriertermine informiert werden",
                customers=mailable,
            )
        for name, mailbox, description in (
            ("Kalibrierlabor", "kalibrierlabor", "Absender und Kopie der Kalibriererinnerungen"),
            ("Service-Hotline", "service", "Support-Team für Tickets"),
        ):
            if not SystemAddress.objects.filter(name__iexact=name).exists():
                services.system_address_create(
                    values={
                        "name": name,
                        "email": f"{mailbox}@{DEMO_DOMAIN}",
                        "language": Language.GERMAN,
                        "description": description,
                    }
                )
