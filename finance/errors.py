"""The one error finance operations refuse with, and its stable, machine-readable codes."""

from __future__ import annotations

from enum import StrEnum


class FinanceErrorCode(StrEnum):
    """Why an operation was refused; the values are the `code` clients see (API and CLI)."""

    # The input cannot be understood.
    INVALID_INPUT = "invalid_input"
    INVALID_LOT = "invalid_lot"
    INVALID_GTIN = "invalid_gtin"
    INVALID_IDENTIFIER = "invalid_identifier"  # a GS1 key with a wrong check digit
    INVALID_AMOUNT = "invalid_amount"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"  # beyond what storage holds (money.py bounds)
    INVALID_DATE = "invalid_date"  # e.g. a statement as of a day before the loan was drawn
    INVALID_TERMS = "invalid_terms"  # loan terms that do not hold together (servicing.py)
    # Something named does not exist (or is not the caller's).
    UNKNOWN_ORG = "unknown_org"
    UNKNOWN_LOT = "unknown_lot"
    UNKNOWN_PRODUCT = "unknown_product"
    UNKNOWN_LINE = "unknown_line"
    UNKNOWN_WAREHOUSE = "unknown_warehouse"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_LOAN = "unknown_loan"
    UNKNOWN_OFFER = "unknown_offer"
    UNKNOWN_APPLICATION = "unknown_application"
    # The organisation named has another role.
    WRONG_ROLE = "wrong_role"
    # The key (GTIN, GLN) is outside the caller's GS1 Company Prefixes.
    NOT_YOUR_PREFIX = "not_your_prefix"
    # The goods of the lot belong to another org (their GS1 Company Prefix says whose).
    NOT_YOUR_GOODS = "not_your_goods"
    # The state of things forbids it.
    NO_LINE = "no_line"
    NOT_IN_SUPERVISED_WAREHOUSE = "not_in_supervised_warehouse"
    ALREADY_PLEDGED = "already_pledged"
    DOUBLE_PLEDGE = "double_pledge"
    NOT_PLEDGED = "not_pledged"
    OUR_LIVE_PLEDGE = "our_live_pledge"  # an operator clearing a key this ledger rightly holds
    SITE_TAKEN = "site_taken"  # another org operates the site
    LOT_SECURES_LOANS = "lot_secures_loans"  # a release while loans on the lot are outstanding
    LIMIT_BELOW_DRAWN = "limit_below_drawn"  # a re-limit below what the line has drawn
    OFFER_NOT_OPEN = "offer_not_open"  # accepted, expired or withdrawn before
    OFFER_EXPIRED = "offer_expired"
    OFFER_WITHDRAWN = "offer_withdrawn"  # decided again at acceptance: no longer all of it
    NOT_IN_REVIEW = "not_in_review"  # decided at once, or reviewed already
    REVIEW_REFUSED = "review_refused"  # approved in review, but the rules do not approve it now
    PROGRAMME_IN_RUN_OFF = "programme_in_run_off"  # no new loans, offers or limit increases
    LINE_NOT_SETTLED = "line_not_settled"  # closing a line that still owes or holds pledges
    LINE_CLOSED = "line_closed"  # a closed line is not unfrozen, re-limited or reopened
    UNKNOWN_RECEIVABLE = "unknown_receivable"
    RECEIVABLE_NOT_OPEN = "receivable_not_open"  # confirmed already, or financed, or paid
    RECEIVABLE_NOT_CONFIRMED = "receivable_not_confirmed"  # a financier acts on confirmed ones
    NO_POLICY = "no_policy"  # a financier finances receivables at its own policy only
    LIMIT_EXCEEDED = "limit_exceeded"  # the advance does not fit in the line's availability


class FinanceError(Exception):
    """An operation refused; `code` is stable, `detail` is one sentence for people."""

    def __init__(self, code: FinanceErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
