"""Every finance refusal maps to one HTTP status, the same ones clients have always seen."""

from __future__ import annotations

import pytest

from api.errors import finance_status
from finance.errors import FinanceErrorCode


def test_every_code_has_a_status() -> None:
    for code in FinanceErrorCode:
        assert finance_status(code, "POST") in (403, 404, 409, 422)


@pytest.mark.parametrize(
    ("code", "method", "status"),
    [
        ("invalid_lot", "POST", 422),
        ("invalid_lot", "DELETE", 422),
        ("invalid_lot", "GET", 400),
        ("invalid_input", "POST", 422),
        ("invalid_amount", "POST", 422),
        ("unknown_lot", "GET", 404),
        ("unknown_line", "POST", 404),
        ("wrong_role", "POST", 403),
        ("no_line", "POST", 409),
        ("double_pledge", "POST", 409),
        ("already_pledged", "POST", 409),
        ("not_pledged", "DELETE", 409),
        ("not_in_supervised_warehouse", "POST", 409),
    ],
)
def test_status_of_each_refusal(code: str, method: str, status: int) -> None:
    assert finance_status(FinanceErrorCode(code), method) == status
