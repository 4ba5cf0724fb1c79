"""Spreadsheet import benchmark: N instruments from an XLSX file, dry run and import.

    python bench/imports.py [--rows 100000] [--customers 1000]

Writes an XLSX export of --rows instruments of --customers customers (as calServer's grid
export looks: German headers and dates) with openpyxl, then in a child process of its own
(so its peak memory is the import's alone, Django and the libraries included) goes the
way of the page: upload (imports.services.run_create), mapping, dry run, confirm, import
(the passes the Celery tasks run). Then a second import of the same file, which must find
every row unchanged.

Database: a new PostgreSQL database next to DATABASE_URL's when that is PostgreSQL, else
a temporary SQLite file. Target (issue 16): 100,000 instruments in under 2 minutes and
under 500 MB on the 2-core machine. Figures are printed, never asserted. The last line is
``import: N rows in S s, peak M MB`` (S: dry run and import together).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO_ROOT,
    is_postgres,
    say,
    set_environment,
    setup_django,
    throwaway_postgres,
)

HEADERS = [
    "Inventarnummer",
    "Bezeichnung",
    "Hersteller",
    "Typ",
    "Seriennummer",
    "Kundennummer",
    "Letzte Kalibrierung",
    "Intervall (Monate)",
]
COLUMNS = {
    "Inventarnummer": "inventory_number",
    "Bezeichnung": "description",
    "Hersteller": "manufacturer",
    "Typ": "model",
    "Seriennummer": "serial_number",
    "Kundennummer": "customer_number",
    "Letzte Kalibrierung": "last_calibration",
    "Intervall (Monate)": "calibration_interval_months",
}


def write_file(path: Path, rows: int, customers: int) -> None:
    import datetime

    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Inventar")
    sheet.append(HEADERS)
    start = datetime.date(2025, 1, 1)
    makers = [("Fluke", "87V", "Digitalmultimeter"), ("Mitutoyo", "500-196", "Messschieber")]
    for index in range(rows):
        maker, model, description = makers[index % 2]
        last = start + datetime.timedelta(days=index % 365)
        sheet.append(
            [
                f"INV-{index:07d}",
                description,
                maker,
                model,
                f"SN{index * 7919 % 10**8:08d}",
                str(10001 + index % customers),
                last.strftime("%d.%m.%Y"),
                12 + 12 * (index % 3),
            ]
        )
    workbook.save(path)


def child(path: str) -> None:
    """The import itself, in a fresh process: prints its timings and peak memory as JSON."""
    setup_django()
    from django.contrib.auth import get_user_model

    from imports import services
    from imports.models import ImportRun

    admin = get_user_model().objects.get(username="bench-admin")
    content = Path(path).read_bytes()
    figures = {}
    for attempt in ("first", "second"):
        started = time.perf_counter()
        run = services.run_create(
            kind="instruments", file_name="inventar.xlsx", content=content, user=admin, mapping=None
        )
        services.run_set_mapping(
            run=run,
            mapping={"columns": COLUMNS, "date_format": "%d.%m.%Y", "value_maps": {}},
            mark_missing_inactive=False,
        )
        services.run_analyse(run_id=run.pk)
        analysed = time.perf_counter()
        services.run_confirm(run=run)
        services.run_apply(run_id=run.pk)
        done = time.perf_counter()
        run = ImportRun.objects.get(pk=run.pk)
        figures[attempt] = {
            "dry_run": analysed - started,
            "import": done - analysed,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "rejected": run.rejected,
        }
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    with tempfile.TemporaryDirectory(prefix="calmail-bench-imports-") as tmp:
        directory = Path(tmp)
        source_url = os.environ.get("DATABASE_URL", "")
        with (
            throwaway_postgres(source_url)
            if is_postgres(source_url)
            else _sqlite(directory) as database_url
        ):
            env = set_environment(
                database_url=database_url,
                broker_url="memory://",
                var_dir=directory / "var",
                settings_module="calmail.settings_test",
            )
            setup_django()
            from django.contrib.auth import get_user_model
            from django.contrib.auth.models import Group
            from django.core.management import call_command
            from django.db import connections

            from calmail.common.roles import ADMINISTRATOR
            from inventory.models import Customer

            call_command("migrate", verbosity=0)
            admin = get_user_model().objects.create_user(username="bench-admin")
            admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
            Customer.objects.bulk_create(
                Customer(number=str(10001 + n), name=f"Kunde {n}") for n in range(args.customers)
            )
            connections.close_all()
            path = directory / "inventar.xlsx"
            started = time.perf_counter()
            write_file(path, args.rows, args.customers)
            say(
                f"file: {args.rows} instruments, {path.stat().st_size / 1e6:.1f} MB XLSX, "
                f"written in {time.perf_counter() - started:.1f} s"
            )
            say(f"database: {'PostgreSQL' if is_postgres(database_url) else 'SQLite'}")
            result = subprocess.run(  # noqa: S603 - our own script
                [sys.executable, __file__, "--child", str(path)],
                env={**os.environ, **env},
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode:
                say(result.stderr[-3000:])
                raise SystemExit(result.returncode)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
    for attempt in ("first", "second"):
        f = figures[attempt]
        say(
            f"{attempt} import: dry run {f['dry_run']:.1f} s, import {f['import']:.1f} s; "
            f"created {f['created']}, updated {f['updated']}, unchanged {f['unchanged']}, "
            f"rejected {f['rejected']}"
        )
    first = figures["first"]
    total = first["dry_run"] + first["import"]
    say(f"import: {args.rows} rows in {total:.1f} s, peak {figures['peak_mb']:.0f} MB")


class _sqlite:
    def __init__(self, directory: Path) -> None:
        self.url = f"sqlite:///{directory / 'bench.sqlite3'}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc) -> None:
        return None


if __name__ == "__main__":
    main()
