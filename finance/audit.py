"""Finance's part of the audit: pledges against PledgeRegistry, decisions against the journal.

`full_audit` is what `tracefin audit` and `GET /v1/audit` run: `ledger.audit` (events, log,
batches) with these checks added. Finding kinds, stable like the ledger's:

Pledges (against PledgeRegistry and the finance journal):
- `pledge_differs_from_chain`: a live pledge whose lot the registry shows pledged to another
  address or to none; or a lot with no live pledge here (released, or its row deleted) that the
  registry shows pledged to one of our financiers. Lots pledged on chain to addresses that are
  none of our financiers are another system's business and not reported.
- `pledge_differs_from_journal`: a live pledge on another line than its `pledged` journal entry
  names, or with none (moving collateral between two lines of the same bank leaves the chain
  unchanged; the journal catches it).
- `pledge_altered`: the stored lot key is not the lot's key.

Financing decisions (against the append-only finance journal and the event store):
- `decision_differs_from_journal`: a decision whose kind, approved amount, reasons or evidence
  differ from the `decision_*` journal entry written with it, that has no such entry (or several),
  or a journal entry whose decision is gone.
- `decision_evidence_missing`: evidence naming an event hash that is not a stored event.
- `journal_altered`: a finance journal entry whose HMAC seal (`finance/journal_seal.py`, under
  `TRACEFIN_JOURNAL_KEY`, which the database never holds) does not match it, or that has none.
  So a decision edited together with its journal entry is caught, as is an edited journal alone.

Limits. Without the key nobody can write a sealed entry; with it (a tracefin process, or whoever
holds its settings) anyone can. Seals do not chain, so a deleted journal entry is caught only
where another record expects it (a decision, a live pledge). Entries written before migration
0008 have no seal and are reported. Pledge rows
are compared on lot, financier and line, not on location or times. Findings reflect the moment
each table was read: the audit does not stop writers, so a write racing it may show as a finding
that a second run no longer reports.

Loans (against their payments, issue 15):
- `loan_differs_from_payments`: a payment whose stored split (fees, penalty, interest,
  principal) is not what the waterfall makes of the loan's terms and payments, or a loan whose
  recorded principal outstanding is not its principal less the principal its payments repaid.

Error declarations (issue 16 item 4; they make evidence void, so they are checked like it):
- `declaration_altered`: a recorded declaration whose digest does not recompute from its row
  (who, through what, when received, the declaration as captured), or whose declaration time,
  reason or corrective event IDs are not what its declaration object says.
- `declaration_differs_from_journal`: a declaration finance applied whose sealed
  `evidence_declared_erroneous` journal entry is missing or names another digest (the row was
  edited, digest and all), or such an entry whose declaration is gone (deleting it would make
  void evidence count again).

Also `chain_not_checked` when live pledges exist but no chain was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from epcis.declarations import implied_columns
from epcis.event_hash import hash_id_from_digest
from finance import repayments
from finance.pledges import PledgeRegistry, lot_key, org_address
from finance.store import attribution, credit, declarations
from finance.store import audit as audit_store
from finance.store.audit import PledgeForAudit
from finance.store.journal import Journal
from ledger.audit import AuditReport, Finding, audit
from ledger.chain import Chain, ChainError
from ledger.log_store import Deployment
from records import declaration_store
from records.db import Conn


def full_audit(conn: Conn, w3: Web3 | None, journal: Journal) -> AuditReport:
    """The whole audit: the record of truth and the finance records kept beside it.

    `journal` holds the key the journal's seals are checked with."""

    def finance_checks(
        conn: Conn, chain: Chain | None, deployment: Deployment | None
    ) -> list[Finding]:
        return check(conn, journal, chain, deployment)

    return audit(conn, w3, extra=(finance_checks,))


def check(
    conn: Conn, journal: Journal, chain: Chain | None, deployment: Deployment | None
) -> list[Finding]:
    """Pledges and decisions; pledges also against the chain when there is one."""
    records = _FinanceRecords.read(conn)
    findings = records.pledge_findings()
    if chain is not None and deployment is not None:
        findings.extend(records.pledge_chain_findings(conn, chain, deployment.deployed_block))
    elif records.has_live_pledges:
        findings.append(
            Finding("chain_not_checked", "live pledges were not compared with PledgeRegistry")
        )
    findings.extend(records.decision_findings(conn, journal))
    findings.extend(loan_findings(conn))
    findings.extend(declaration_findings(conn))
    return findings


def declaration_findings(conn: Conn) -> list[Finding]:
    """Each recorded declaration against its own digest and columns and its journal entry."""
    findings = []
    stored = declaration_store.all_declarations(conn)
    applied = declarations.applied_ids(conn)
    entries: dict[str, list[str]] = {}
    for _, subject, digest in declarations.journaled(conn):
        entries.setdefault(subject, []).append(digest)
    recorded: set[tuple[str, str]] = set()
    for row in stored:
        label = f"declaration of {hash_id_from_digest(bytes(row.event_hash))}"
        digest = bytes(row.digest).hex()
        recorded.add((hash_id_from_digest(bytes(row.event_hash)), digest))
        implied = implied_columns(row.declaration)
        columns = (row.declaration_time, row.reason, tuple(row.corrective_event_ids))
        if row.record().digest() != bytes(row.digest) or implied != columns:
            findings.append(Finding("declaration_altered", f"{label}: its row was edited"))
        if row.id in applied and entries.get(hash_id_from_digest(bytes(row.event_hash))) != [
            digest
        ]:
            findings.append(
                Finding(
                    "declaration_differs_from_journal",
                    f"{label}: not the one its journal entry sealed",
                )
            )
    declared = {subject for subject, _ in recorded}
    for subject in sorted(entries.keys() - declared):  # an edited one is reported above
        findings.append(
            Finding(
                "declaration_differs_from_journal",
                f"the journal sealed a declaration of {subject} that is gone",
            )
        )
    return findings


def loan_findings(conn: Conn) -> list[Finding]:
    """Each loan and its payments against the waterfall's reading of them."""
    by_loan: dict[int, list[credit.LoanPayment]] = {}
    for payment in credit.every_payment(conn):
        by_loan.setdefault(payment.loan_id, []).append(payment)
    return [
        Finding("loan_differs_from_payments", f"loan {loan.id}: {problem}")
        for loan in credit.loans_of_org(conn, None)
        for problem in repayments.disagreements(loan, by_loan.get(loan.id, []))
    ]


@dataclass(frozen=True)
class _FinanceRecords:
    """The finance rows the audit compares with the chain and with the journal."""

    pledges: list[PledgeForAudit]
    financiers: dict[str, str]  # on-chain address (lower case) -> slug

    @classmethod
    def read(cls, conn: Conn) -> _FinanceRecords:
        return cls(
            pledges=audit_store.pledges_for_audit(conn),
            financiers={
                org_address(org).lower(): org.slug for org in audit_store.financier_orgs(conn)
            },
        )

    @property
    def has_live_pledges(self) -> bool:
        return any(pledge.live for pledge in self.pledges)

    def pledge_findings(self) -> list[Finding]:
        findings = []
        for pledge in self.pledges:
            if pledge.lot_key != lot_key(pledge.lot_uri):
                findings.append(
                    Finding(
                        "pledge_altered",
                        f"{pledge.lot_uri}: recorded lot key 0x{pledge.lot_key.hex()} is not"
                        f" the lot's key 0x{lot_key(pledge.lot_uri).hex()}",
                    )
                )
            if pledge.live and pledge.journal_line != str(pledge.line_id):
                journal = (
                    f"its journal entry names line {pledge.journal_line}"
                    if pledge.journal_line is not None
                    else "the journal has no `pledged` entry for it"
                )
                findings.append(
                    Finding(
                        "pledge_differs_from_journal",
                        f"{pledge.lot_uri}: pledged on line {pledge.line_id}, {journal}",
                    )
                )
        return findings

    def pledge_chain_findings(self, conn: Conn, chain: Chain, from_block: int) -> list[Finding]:
        registry = PledgeRegistry(chain)
        # Keyed by the lot's true key: an edited lot_key column must not redirect the check.
        live = {lot_key(p.lot_uri): p for p in self.pledges if p.live}
        lots = {lot_key(p.lot_uri): p.lot_uri for p in self.pledges}
        findings = []
        unrecorded: list[tuple[bytes, str]] = []  # (lot key, our financier pledged to on chain)
        try:
            for key in sorted(set(lots) | registry.pledged_lot_keys(from_block)):
                pledgee = registry.pledgee(key)
                on_chain = pledgee.lower() if pledgee is not None else None
                pledge = live.get(key)
                if pledge is not None:
                    if on_chain is None or self.financiers.get(on_chain) != pledge.financier:
                        findings.append(
                            Finding(
                                "pledge_differs_from_chain",
                                f"{pledge.lot_uri}: pledged here to {pledge.financier} (line"
                                f" {pledge.line_id}), on chain {self._describe(pledgee)}",
                            )
                        )
                elif on_chain in self.financiers:
                    unrecorded.append((key, self.financiers[on_chain]))
        except ChainError as exc:
            findings.append(Finding("chain_unavailable", str(exc)))
        if unrecorded and any(key not in lots for key, _ in unrecorded):
            lots |= {lot_key(uri): uri for uri in attribution.lot_uris(conn)}  # rare: name them
        for key, financier in unrecorded:
            findings.append(
                Finding(
                    "pledge_differs_from_chain",
                    f"{lots.get(key, f'lot key 0x{key.hex()}')}: no live pledge here, on chain"
                    f" pledged to {financier}",
                )
            )
        return findings

    def _describe(self, pledgee: str | None) -> str:
        if pledgee is None:
            return "not pledged"
        slug = self.financiers.get(pledgee.lower())
        return f"pledged to {slug}" if slug else f"pledged to {pledgee}"

    @staticmethod
    def decision_findings(conn: Conn, journal: Journal) -> list[Finding]:
        findings = []
        for mismatch in audit_store.decisions_differing_from_journal(conn):
            label = f"decision {mismatch.decision_id} (application {mismatch.application_id})"
            if mismatch.journal_entries != 1:
                detail = f"{mismatch.journal_entries} journal entries record it, not one"
            else:
                differing = [
                    name
                    for name, differs in (
                        ("kind", mismatch.kind_differs),
                        ("approved amount", mismatch.amount_differs),
                        ("reasons", mismatch.reasons_differ),
                        ("evidence", mismatch.evidence_differs),
                    )
                    if differs
                ]
                verb = "differs" if len(differing) == 1 else "differ"
                detail = f"{', '.join(differing)} {verb} from its journal entry"
            findings.append(Finding("decision_differs_from_journal", f"{label}: {detail}"))
        for orphan in audit_store.journaled_decisions_missing(conn):
            findings.append(
                Finding(
                    "decision_differs_from_journal",
                    f"journal entry {orphan.journal_id} records a decision on {orphan.subject},"
                    " which has none",
                )
            )
        for broken in journal.broken_seals(conn):
            what = "has no seal" if broken.unsealed else "does not match its seal"
            detail = f"journal entry {broken.journal_id} ({broken.action} {broken.subject}) {what}"
            findings.append(Finding("journal_altered", detail))
        for missing in audit_store.decision_evidence_not_stored(conn):
            findings.append(
                Finding(
                    "decision_evidence_missing",
                    f"decision {missing.decision_id}: evidence"
                    f" {hash_id_from_digest(missing.digest)} is not a stored event",
                )
            )
        return findings
