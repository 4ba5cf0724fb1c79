from tests.section_fixtures import english, media_root, other_team, team  # noqa: F401 (fixtures)
