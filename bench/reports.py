"""Report export benchmark: an Excel and a PDF report of N rows, time and peak memory.

    python bench/reports.py [--rows 10000] [--language de]

Builds the rows of the INVENTORY report ("Instruments due for calibration") in memory —
realistic German demo values, a quarter of them overdue — and exports them with the same
exporters a mail action uses (templates_app.reports.exporters). Each export runs in a
child process of its own, so its peak memory (the child's maximum resident set size,
Django and the libraries included) is not inflated by the other export. No database is
needed.

Targets (issue 4): Excel ≤ 3 s and ≤ 150 MB, PDF ≤ 15 s. Figures are printed, never
asserted. The last line is ``reports: excel S s M MB, pdf S s M MB, N rows``.
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

from bench.common import REPO_ROOT, say, set_environment, setup_django

TARGETS = {"excel": (3.0, 150.0), "pdf": (15.0, None)}


def build_report(rows: int):
    import datetime
    import random

    from inventory.selectors import Scope
    from templates_app.reports import ReportData, get

    report = get("instruments_due")
    today = datetime.date(2025, 3, 3)
    generator = random.Random(42)  # noqa: S311 - demo data, not security
    makers = [
        ("Fluke", "87V", "Digitalmultimeter"),
        ("Keysight", "34465A", "Tischmultimeter"),
        ("Mitutoyo", "500-196-30", "Messschieber digital"),
        ("Testo", "175 T2", "Temperatur-Datenlogger"),
        ("Hottinger Brüel & Kjær", "U2B", "Kraftaufnehmer"),
        ("Wika", "CPG1500", "Präzisions-Digitalmanometer"),
    ]
    places = ["Prüflabor", "Werkstatt Süd", "Halle 3", "Qualitätssicherung", "Außenlager"]
    data = []
    for index in range(rows):
        manufacturer, model, description = makers[index % len(makers)]
        last = today - datetime.timedelta(days=generator.randint(200, 500))
        due = last + datetime.timedelta(days=365)
        customer = 10001 + index % 400
        data.append(
            {
                "inventory_number": f"INV-{index + 1:06d}",
                "description": description,
                "manufacturer": manufacturer,
                "model": model,
                "serial_number": f"SN{generator.randint(10**7, 10**8 - 1)}",
                "customer": f"{customer} · Muster Messtechnik {customer % 97} GmbH",
                "location": f"{places[index % len(places)]} {index % 7 + 1}",
                "last_calibration": last,
                "next_due_date": due,
                "due_state": "überfällig" if due < today else "fällig",
            }
        )
    return ReportData(
        key=report.key,
        title=str(report.title),
        columns=report.columns,
        rows=data,
        due_filter="all",
        window_days=30,
        today=today,
        scope=Scope.all(),
    )


def child(kind: str, rows: int, language: str) -> None:
    setup_django()
    from django.utils import translation

    from templates_app.reports.exporters import export_excel, export_pdf

    with translation.override(language):
        report = build_report(rows)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        if kind == "excel":
            content = export_excel(report)
        else:
            content = export_pdf(report, recipient_label="Alle Kunden")
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"seconds": seconds, "peak_mb": peak, "baseline_mb": baseline, "bytes": len(content)}
        )
    )


def run_child(kind: str, rows: int, language: str, environment: dict) -> dict:
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, __file__, "--child", kind, "--rows", str(rows), "--language", language],
        cwd=REPO_ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"The {kind} export failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--language", default="de", choices=["de", "en"])
    parser.add_argument("--child", choices=["excel", "pdf"], help=argparse.SUPPRESS)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="calmail-bench-reports-") as var_dir:
        environment = set_environment(
            database_url=f"sqlite:///{Path(var_dir) / 'bench.sqlite3'}",
            broker_url="memory://",
            var_dir=Path(var_dir),
            settings_module="calmail.settings",
        )
        if options.child:
            child(options.child, options.rows, options.language)
            return
        say(f"Report export of {options.rows} rows ({options.language}), one process each:")
        results = {}
        for kind in ("excel", "pdf"):
            result = run_child(kind, options.rows, options.language, environment)
            results[kind] = result
            seconds_target, memory_target = TARGETS[kind]
            verdict = "ok" if result["seconds"] <= seconds_target else "SLOWER than target"
            if memory_target is not None and result["peak_mb"] > memory_target:
                verdict += ", MORE memory than target"
            say(
                f"  {kind:5}  {result['seconds']:6.2f} s  peak {result['peak_mb']:6.1f} MB "
                f"(before export {result['baseline_mb']:.1f} MB)  "
                f"{result['bytes'] / 1024:8.0f} KiB  target ≤ {seconds_target:g} s"
                + (f", ≤ {memory_target:g} MB" if memory_target else "")
                + f": {verdict}"
            )
        excel, pdf = results["excel"], results["pdf"]
        say(
            f"reports: excel {excel['seconds']:.2f} s {excel['peak_mb']:.0f} MB, "
            f"pdf {pdf['seconds']:.2f} s {pdf['peak_mb']:.0f} MB, {options.rows} rows"
        )


if __name__ == "__main__":
    main()
