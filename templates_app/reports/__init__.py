"""The report engine: a registry of report providers per template type, and exporters.

Templates reach calServer's data only through this registry (docs/design.md 5.6.3), so an
installation can register providers over its own models:

    from templates_app.reports import Report, register

    class MyReport(Report):
        key = "my_report"
        template_type = TemplateType.INVENTORY
        ...

    register(MyReport())
"""

from templates_app.reports.registry import (
    Column,
    ColumnKind,
    Report,
    ReportData,
    ReportNotFound,
    TemplateType,
    all_reports,
    get,
    register,
    report_choices,
    reports_for_type,
    unregister,
)

__all__ = [
    "Column",
    "ColumnKind",
    "Report",
    "ReportData",
    "ReportNotFound",
    "TemplateType",
    "all_reports",
    "get",
    "register",
    "report_choices",
    "reports_for_type",
    "unregister",
]
