from tests.section_fixtures import english, media_root, other_team, team  # noqa: F401 (fixtures)


def entry_fields(entry) -> dict:
    """A log entry as a dict of what a reader sees, for comparing field by field."""
    return {
        "level": entry.level,
        "category": entry.category,
        "actor": entry.actor,
        "actor_label": entry.actor_label,
        "content_type": (
            f"{entry.content_type.app_label}.{entry.content_type.model}"
            if entry.content_type
            else None
        ),
        "object_id": entry.object_id,
        "object_label": entry.object_label,
        "message": entry.message,
        "params": entry.params,
        "details": entry.details,
        "group": entry.group,
        "audit_action": entry.audit_action,
        "changes": entry.changes,
    }
