"""The code layout's rules that import-linter cannot see: where SQL may be written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("epcis", "records", "ledger", "finance", "ingest", "api", "tracefin")
# A string that starts like a statement is SQL (the project writes SQL keywords in capitals).
SQL = re.compile(
    r"^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s|DROP\s|ALTER\s|"
    r"TRUNCATE\s|LISTEN\s|NOTIFY\s|COPY\s|WITH\s+\w+\s+AS|SHOW\s|SET\s+\w+\s*(=|TO\s)|"
    r"VACUUM|ANALYZE|LOCK\s+TABLE)"
)
# Besides store modules (a file or package named *store*): the migration runner, and the EPCIS
# query builder, which composes one statement from the standard's query parameters.
ALSO_ALLOWED = {"records/db.py", "records/event_query.py"}


def _is_store(relative: str) -> bool:
    return relative in ALSO_ALLOWED or any("store" in part for part in Path(relative).parts)


def _sql_lines(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
    )


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_scan_recognises_sql() -> None:
    # The check below could pass by recognising nothing: it must see the stores' statements.
    found = {path.relative_to(ROOT).as_posix() for path in _modules() if _sql_lines(path)}
    assert {"records/event_store.py", "ledger/log_store.py", "records/db.py"} <= found


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_sql_is_written_only_in_store_modules(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    if _is_store(relative):
        return
    assert _sql_lines(path) == [], f"SQL in {relative}: move it to a store module"


def test_api_holds_no_sql_and_no_store_of_its_own() -> None:
    api = [path.relative_to(ROOT).as_posix() for path in (ROOT / "api").rglob("*.py")]
    assert not [name for name in api if _is_store(name)]
