"""The layering of docs/architecture.md is checked by import-linter (`make lint`): the
project keeps it, and one wrong import breaks it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("accounts", "actions", "calmail", "compose", "inventory", "mailbox", "maillog")
PACKAGES += ("overview", "smtpconfig", "templates_app")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(directory / "pyproject.toml"), "--no-cache"],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(directory)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy_of_the_project(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "templates", "static"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_its_layers(copy_of_the_project):
    result = lint_imports(copy_of_the_project)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import"),
    [
        # The Log is a sink: it never reads the outbox.
        ("maillog/probe.py", "from mailbox.models import OutboxMessage\n"),
        # Shared code imports no section.
        ("calmail/common/probe.py", "import actions.models\n"),
        # The outbox and templates stand side by side, neither on the other.
        ("mailbox/probe.py", "from templates_app import rendering\n"),
    ],
)
def test_a_wrong_import_breaks_the_check(copy_of_the_project, module, wrong_import):
    (copy_of_the_project / module).write_text(wrong_import)

    result = lint_imports(copy_of_the_project)

    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    probe = module.removesuffix(".py").replace("/", ".")
    assert probe in result.stdout
