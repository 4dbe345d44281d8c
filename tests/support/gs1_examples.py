"""GS1's EPCIS 2.0 examples (tests/fixtures/epcis-2.0) and an org that owns what they name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psycopg

from epcis.authority import site_of
from epcis.capture import index_columns
from epcis.event_hash import document_events
from epcis.model import parse_event
from epcis.rejects import EventRejected
from epcis.xml_binding import xml_document
from ingest.capture_jobs import CaptureJobConfig, CaptureJobWorker
from records import registry_store
from tests.support.api import Api

FIXTURES = Path(__file__).parents[1] / "fixtures" / "epcis-2.0"
EXAMPLES = FIXTURES / "JSON"
XML_EXAMPLES = FIXTURES / "XML"
OPENAPI = FIXTURES / "rest-binding" / "openapi.json"
# The GS1 Company Prefixes of GS1's examples (seed_world's `maker` holds 0614141 already). Some
# examples carry an errorDeclaration: capturing one records it (declared from the start), which
# only a party entitled to attest the event may do, so the examples are captured by the owner of
# their goods and the operator of their sites.
# Examples without events (capture jobs, master data, a CBV illustration).
XML_WITHOUT_EVENTS = ("CaptureJob/", "masterData", "masterdata", "CBV-11.4")
CAPTURE_JOB_CONFIG = CaptureJobConfig(
    max_payload_bytes=256 * 1024, max_future_skew=timedelta(minutes=10)
)
EXAMPLE_PREFIXES = ("4012345", "4023333", "4000001", "5012345", "0353579", "0012345", "0037000")


def own_the_examples(database_url: str, slug: str = "maker") -> None:
    """`slug` holds the examples' prefixes and operates every site they name (granted)."""
    sites = set()
    documents = [orjson.loads(path.read_bytes()) for path in sorted(EXAMPLES.rglob("*.jsonld"))]
    for path in sorted(XML_EXAMPLES.rglob("*.xml")):
        try:
            documents.append(xml_document(path.read_bytes()))
        except EventRejected:
            continue  # no events: a capture job, master data
    now = datetime.now(UTC)
    for document in documents:
        for raw in document_events(document):
            try:
                event = parse_event(dict(raw), now=now, max_future_skew=timedelta(minutes=10))
            except EventRejected:
                continue  # GS1's two misspelt events, refused by capture too
            site = site_of(index_columns(event, dict(raw)))
            if site is not None:
                sites.add(site)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for prefix in EXAMPLE_PREFIXES:
            registry_store.add_prefix(conn, slug, prefix)
        for gln in sorted(sites):
            registry_store.add_site(conn, slug, gln, "A site of GS1's examples", grant=True)


def post_capture(api: Api, body: object, who: str = "maker", **headers: str) -> httpx.Response:
    """POST /epcis/capture of a document (bytes as they are, anything else as JSON)."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return api.call(
        "POST",
        "/epcis/capture",
        who,
        content=content,
        headers={"Content-Type": "application/json", **headers},
    )


def work_all(database_url: str, config: CaptureJobConfig = CAPTURE_JOB_CONFIG) -> int:
    """Work every waiting capture job with the worker's own code, in process; how many it
    finished."""
    worker = CaptureJobWorker(database_url, config)
    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        psycopg.connect(database_url, autocommit=True) as side,
    ):
        while worker.work_next(conn, side):
            pass
    return worker.finished
