"""Public routes: the GS1 Digital Link provenance pages, proofs, verification and QR codes."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
import segno
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.config import ApiConfig
from api.deps import Config, Confirmations, DbConn, Pages
from api.errors import COMMON_PROBLEMS, Problem, problems
from api.i18n import SAID_BY_STEP, TEXTS, language
from api.product_page import celsius, chart, cold_chain, duration
from api.schemas import (
    DeploymentPublic,
    ProofBundle,
    ProvenancePublic,
    TrustedAnchorPublic,
    VerifyResult,
)
from epcis.event_hash import digest_from_hash_id, hash_id_from_digest
from epcis.identifiers import gtin14, lot_uri, normalise_epc, parse_lot, parse_sgtin, sgtin_uri
from finance.store.goods import get_product
from ledger import log_store, provenance
from ledger.chain import connect
from ledger.chain_confirmations import BatchConfirmations
from ledger.page_cache import CachedPage, PageCache
from ledger.proofs import build_bundle
from ledger.verify import verify_bundle
from records.db import Conn

router = APIRouter(responses={**COMMON_PROBLEMS, **problems(404, 503)})
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _local_time(event: dict[str, Any]) -> str:
    """The event's time where it happened (its own zone offset), as people there read it."""
    offset: str = event["event_time_zone_offset"]
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    local = event["event_time"].astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} (UTC{offset})"


def _iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_templates.filters["local_time"] = _local_time
_templates.filters["iso_utc"] = _iso_utc
_templates.filters["celsius"] = celsius
_templates.filters["duration"] = duration

# The page's one script: loaded once, served with the page's own policy (script-src 'self').
_SCRIPT = (Path(__file__).parent / "static" / "page.js").read_bytes()
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(?::\d{1,5})?$")


def page_policy(public_rpc: str | None) -> str:
    """The product page's Content-Security-Policy: its own script and nothing else runs; it
    may talk to JSON-RPC nodes the viewer picks (any https one, one on their own machine, and
    the deployment's public one), and loads nothing from anywhere."""
    nodes = ["'self'", "https:", "http://127.0.0.1:*", "http://localhost:*"]
    if public_rpc:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(public_rpc))
        if _ORIGIN.match(origin) and origin not in nodes:
            nodes.append(origin)
    return (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:;"
        f" connect-src {' '.join(nodes)}; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )


def _provenance(
    conn: Conn,
    cache: PageCache,
    confirmations: BatchConfirmations,
    gtin: str,
    *,
    lot: str | None = None,
    serial: str | None = None,
) -> CachedPage:
    """The page (cached while current), in the shape of ProvenancePublic; 404 without events."""
    gtin14 = gtin.zfill(14)
    uri = sgtin_uri(gtin14, serial) if serial is not None else lot_uri(gtin14, lot or "")

    def build(c: Conn) -> tuple[dict[str, Any], bool]:
        product = None

        def product_name() -> str | None:
            nonlocal product
            product = get_product(c, gtin14)
            return product.name if product else None

        page = provenance.page(
            c, confirmations, uri, gtin14, lot=lot, serial=serial, product_name=product_name
        )
        if page is None:
            raise Problem(404, "unknown_product", f"no events are known for {uri}")
        data = page.data
        low = product.min_temp_c if product else None
        high = product.max_temp_c if product else None
        data["product"] |= {
            "category": product.category if product else None,
            "min_temp_c": float(low) if low is not None else None,
            "max_temp_c": float(high) if high is not None else None,
        }
        data["cold_chain"] = cold_chain(c, data["events"], low, high, datetime.now(UTC))
        data["trusted_anchors"] = sorted(
            f"{anchor.chain_id}:{anchor.contract}"
            for anchor in log_store.trusted_anchors(c, confirmations.pinned)
        )
        # Goods still at a site gather readings the page cache hears nothing of: not kept.
        still_measured = data["cold_chain"] is not None and data["cold_chain"]["open"]
        return data, page.complete and not still_measured

    return cache.page(conn, uri, build)


def _respond(request: Request, config: ApiConfig, page: CachedPage) -> Response:
    accept = request.headers.get("accept", "")
    if "text/html" in accept and "application/json" not in accept:
        lang = language(request.headers.get("accept-language"))
        html = page.renderings.get(lang)
        if html is None:
            cold = page.data.get("cold_chain")
            html = page.renderings[lang] = (
                _templates.get_template("provenance.html")
                .render(
                    lang=lang,
                    t=TEXTS[lang],
                    said_by_step=SAID_BY_STEP,
                    chart=chart(cold) if cold else None,
                    public_rpc=config.public_rpc_url,
                    **page.data,
                )
                .encode()
            )
        return HTMLResponse(
            html,
            headers={
                "Vary": "Accept, Accept-Language",
                "Content-Security-Policy": page_policy(config.public_rpc_url),
            },
        )
    body = page.renderings.get("json")
    if body is None:
        body = page.renderings["json"] = orjson.dumps(page.data)
    return Response(body, media_type="application/json", headers={"Vary": "Accept"})


_PAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "text/html": {}},
        "description": "JSON, or HTML for browsers (Accept: text/html)",
    }
}


@router.get(
    "/01/{gtin}/21/{serial}",
    response_model=ProvenancePublic,
    responses=_PAGE,
    summary="Provenance of a serialised item (GS1 Digital Link)",
)
def item_page(
    request: Request,
    conn: DbConn,
    config: Config,
    cache: Pages,
    confirmations: Confirmations,
    gtin: str,
    serial: str,
) -> Response:
    _check_gtin(gtin)
    return _respond(request, config, _provenance(conn, cache, confirmations, gtin, serial=serial))


@router.get(
    "/01/{gtin}/10/{lot}",
    response_model=ProvenancePublic,
    responses=_PAGE,
    summary="Provenance of a lot (GS1 Digital Link)",
)
def lot_page(
    request: Request,
    conn: DbConn,
    config: Config,
    cache: Pages,
    confirmations: Confirmations,
    gtin: str,
    lot: str,
) -> Response:
    _check_gtin(gtin)
    return _respond(request, config, _provenance(conn, cache, confirmations, gtin, lot=lot))


@router.get(
    "/v1/provenance",
    response_model=ProvenancePublic,
    responses=_PAGE,
    summary="Provenance by EPC URN or Digital Link (item or lot)",
)
def provenance_by_epc(
    request: Request,
    conn: DbConn,
    config: Config,
    cache: Pages,
    confirmations: Confirmations,
    epc: Annotated[str, Query(max_length=512)],
) -> Response:
    try:
        canonical = normalise_epc(epc)
        item, lot = parse_sgtin(canonical), parse_lot(canonical)
    except ValueError as exc:
        raise Problem(400, "invalid_identifier", str(exc)) from None
    if item is not None:
        return _respond(
            request, config, _provenance(conn, cache, confirmations, item[0], serial=item[1])
        )
    if lot is not None:
        return _respond(
            request, config, _provenance(conn, cache, confirmations, lot[0], lot=lot[1])
        )
    raise Problem(400, "invalid_identifier", "give an SGTIN (item) or LGTIN (lot) identifier")


@router.get(
    "/static/page.js",
    response_class=Response,
    summary="The provenance page's script: local times and the in-browser proof check",
    responses={200: {"content": {"text/javascript": {}}, "description": "the script"}},
)
def page_script() -> Response:
    return Response(
        _SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _check_gtin(gtin: str) -> None:
    """400 unless the GTIN has one of the GS1 lengths and its check digit is right."""
    if not gtin.isdigit():
        raise Problem(400, "invalid_identifier", "a GTIN has 8, 12, 13 or 14 digits")
    try:
        gtin14(gtin)
    except ValueError as exc:
        raise Problem(400, "invalid_identifier", str(exc)) from None


@router.get(
    # `:path`: the hash id holds slashes, and a URL-encoded %2F arrives decoded.
    "/v1/proofs/{event_hash:path}",
    response_model=ProofBundle,
    response_model_exclude_none=True,
    summary="The proof bundle of an event",
)
def proof(conn: DbConn, event_hash: str) -> dict[str, Any]:
    """`event_hash` is the 64-hex digest or the full `ni:///sha-256;…?ver=CBV2.0` (URL-encoded)."""
    try:
        digest = (
            bytes.fromhex(event_hash) if len(event_hash) == 64 else digest_from_hash_id(event_hash)
        )
    except ValueError:
        raise Problem(
            400, "invalid_event_hash", "give a 64-hex digest or an event hash id"
        ) from None
    bundle = build_bundle(conn, digest)
    if bundle is None:
        raise Problem(
            404, "unknown_event", f"no stored event has the hash {hash_id_from_digest(digest)}"
        )
    return bundle.to_json()


@router.post(
    "/v1/verify",
    response_model=VerifyResult,
    summary="Check a proof bundle against the chain and this deployment's TraceAnchor",
)
def verify(conn: DbConn, config: Config, bundle: Annotated[dict[str, Any], Body()]) -> VerifyResult:
    """Valid only for a batch on a TraceAnchor this server trusts (its pinned ones, else the
    deployments it recorded): a bundle for any other contract is `unknown_contract`."""
    rpc = config.chain_rpc_url
    if rpc is None:
        raise Problem(503, "no_chain", "this server has no chain RPC endpoint configured")
    trusted = log_store.trusted_anchors(conn, config.trusted_anchors)
    verdict = verify_bundle(bundle, connect(rpc), trusted)
    return VerifyResult(valid=verdict.valid, reasons=verdict.reasons)


@router.get(
    "/v1/deployment",
    response_model=DeploymentPublic,
    summary="The contracts this deployment anchors to: what verifiers pin",
)
def deployment(conn: DbConn, config: Config) -> DeploymentPublic:
    """The current deployment, and every TraceAnchor `/v1/verify` accepts, as
    `tracefin verify --deployment FILE` reads it."""
    current = log_store.current_deployment(conn)
    if current is None:
        raise Problem(404, "no_deployment", "no contracts are deployed yet")
    return DeploymentPublic(
        chain_id=current.chain_id,
        trace_anchor=current.anchor_address,
        pledge_registry=current.pledge_address,
        deployed_block=current.deployed_block,
        genesis_hash="0x" + current.genesis_hash.hex(),
        trusted_anchors=[
            TrustedAnchorPublic(chain_id=anchor.chain_id, contract=anchor.contract)
            for anchor in sorted(
                log_store.trusted_anchors(conn, config.trusted_anchors),
                key=lambda anchor: (anchor.chain_id, anchor.contract),
            )
        ],
    )


@router.get(
    "/v1/qr",
    summary="A QR code (SVG or PNG) encoding a URL, e.g. a product's Digital Link",
    response_class=Response,
    responses={
        200: {
            "content": {"image/svg+xml": {}, "image/png": {}},
            "description": "the QR code",
        }
    },
)
def qr(
    url: Annotated[str, Query(min_length=1, max_length=512)],
    format: Annotated[str, Query(pattern="^(svg|png)$")] = "svg",
) -> Response:
    if not url.startswith(("https://", "http://")):
        raise Problem(400, "invalid_url", "only http(s) URLs are encoded")
    code = segno.make(url, error="m")
    buffer = io.BytesIO()
    code.save(buffer, kind=format, scale=6, border=2)
    media = "image/svg+xml" if format == "svg" else "image/png"
    return Response(
        buffer.getvalue(), media_type=media, headers={"Cache-Control": "public, max-age=86400"}
    )
