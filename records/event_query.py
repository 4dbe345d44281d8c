"""SQL of `GET /v1/events`: an EPCIS SimpleEventQuery (epcis/query.py), org scope, keyset pages."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb, set_json_loads

from epcis.identifiers import lot_uri, parse_lot
from epcis.query import DECIMAL_FORM, EventFilter, QueryTooLargeError, page_token
from records.db import Conn


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    # The next page's nextPageToken: the last event's ingest_seq in ingest order, an opaque
    # string (epcis.query.page_token) under orderBy; None on the last page.
    next_cursor: int | str | None
    # The @context of the documents the events were captured in, in page order, one each.
    contexts: list[Any] = field(default_factory=list)
    # When the repository received each event (its recordTime) and its digest, in page order.
    received: list[datetime] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    # Each event's recorded errorDeclaration (as captured), or None, in page order.
    declarations: list[dict[str, Any] | None] = field(default_factory=list)
    # Each event as captured (events.as_captured), or None where that is `events` itself (or
    # the event was stored before the captured form was kept), in page order.
    captured: list[dict[str, Any] | None] = field(default_factory=list)

    def picked(self, indices: list[int]) -> EventPage:
        """The page's events at `indices`, in that order, with everything that goes with
        each (no next page)."""
        return EventPage(
            [self.events[i] for i in indices],
            None,
            [self.contexts[i] for i in indices],
            [self.received[i] for i in indices],
            [self.digests[i] for i in indices],
            [self.declarations[i] for i in indices],
            [self.captured[i] for i in indices],
        )


def _any_of(column: str, values: frozenset[str], params: dict[str, Any]) -> sql.Composable:
    if len(values) == 1:
        # `=`, not `= ANY`: only an equality lets PostgreSQL (before 17) read an index on
        # (org_id, column, ingest_seq) in page order instead of walking every event in order.
        (params[column],) = values
        return sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
    params[column] = sorted(values)
    return sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(column))


def query_events(conn: Conn, query: EventFilter, org_id: int | None) -> EventPage:
    """Matching events in ingest order; `org_id` None: every organisation's (regulators)."""
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": query.per_page + 1}
    for column, values in (
        ("event_type", query.event_types),
        ("action", query.actions),
        ("biz_step", query.biz_steps),
        ("disposition", query.dispositions),
        ("read_point", query.read_points),
        ("biz_location", query.biz_locations),
    ):
        if values is not None:
            clauses.append(_any_of(column, values, params))
    for bound, column, value in (
        (">=", "event_time", query.ge_event_time),
        ("<", "event_time", query.lt_event_time),
        (">=", "received_at", query.ge_record_time),
        ("<", "received_at", query.lt_record_time),
    ):
        if value is not None:
            name = f"t{len(params)}"
            params[name] = value
            clauses.append(
                sql.SQL("{} {} {}").format(
                    sql.Identifier(column), sql.SQL(bound), sql.Placeholder(name)
                )
            )
    if query.ge_record_time is not None:
        # Events recorded since a time (a partner's "what is new since my last poll") sit at
        # the end of ingest order, which the planner cannot know: estimating them spread
        # evenly, it may walk the whole store from its start to find them (bench/query.py saw
        # 464 ms, and timeouts under load, on 1 000 000 events). So the first position among
        # them, read off the (received_at, ingest_seq) index, is given as a bound: exact, not a
        # guess, and cheap for the recent times such queries ask for.
        params["recorded_from"] = query.ge_record_time
        # OFFSET 0 keeps the min a min over the recorded range: written plainly, PostgreSQL
        # turns it into "the first position, walked in order, that was recorded since" (the
        # very walk this bound avoids; 548 ms in bench/query.py's plan).
        clauses.append(
            sql.SQL(
                "ingest_seq >= (SELECT min(f.ingest_seq) FROM (SELECT r.ingest_seq FROM events r"
                " WHERE r.received_at >= %(recorded_from)s OFFSET 0) f)"
            )
        )
    # Identifiers are compared in the stored JSON's fields, named by the parameter: parentID
    # is a string, the lists arrays of strings; classes are in the quantity lists' epcClass.
    for index, (fields, values) in enumerate(query.match_epcs):
        name = f"epc{index}"
        params[name] = sorted(values)
        tests = [
            sql.SQL("event->>{} = ANY({})").format(sql.Literal(f), sql.Placeholder(name))
            if f == "parentID"
            else sql.SQL("event->{} ?| {}").format(sql.Literal(f), sql.Placeholder(name))
            for f in fields
        ]
        # The epcs column (GIN-indexed) holds every instance identifier of every field: it
        # finds the candidates, the JSON test keeps those with it in the asked fields.
        clauses.append(
            sql.SQL("(epcs && {}::text[] AND ({}))").format(
                sql.Placeholder(name), sql.SQL(" OR ").join(tests)
            )
        )
    for index, (fields, values) in enumerate(query.match_classes):
        name = f"cls{index}"
        params[name] = sorted(values)
        lots = [parse_lot(value) for value in values]
        if all(lot is not None for lot in lots):
            # Lot classes are in the lots column (GIN-indexed) too: it finds the candidates.
            params[f"{name}_lots"] = sorted(lot_uri(*lot) for lot in lots if lot is not None)
            clauses.append(sql.SQL("lots && {}::text[]").format(sql.Placeholder(f"{name}_lots")))
        tests = [
            sql.SQL("jsonb_path_query_array(event, {}::jsonpath) ?| {}").format(
                sql.Literal(f"$.{f}[*].epcClass"), sql.Placeholder(name)
            )
            for f in fields
        ]
        clauses.append(sql.SQL("({})").format(sql.SQL(" OR ").join(tests)))
    if query.transformation_ids is not None:
        params["transformation_ids"] = sorted(query.transformation_ids)
        clauses.append(sql.SQL("event->>'transformationID' = ANY(%(transformation_ids)s)"))
    if query.event_ids is not None or query.event_digests is not None:
        params["event_ids"] = sorted(query.event_ids or ())
        params["event_digests"] = sorted(query.event_digests or ())
        clauses.append(
            sql.SQL(
                "(event->>'eventID' = ANY(%(event_ids)s)"
                " OR event_hash = ANY(%(event_digests)s::bytea[])"
                # An id the event had under an earlier hash rule still finds it.
                " OR event_hash IN (SELECT a.event_hash FROM event_hash_aliases a"
                " WHERE a.alias = ANY(%(event_digests)s::bytea[])))"
            )
        )
    declared = _declared(query, params)
    if declared is not None:
        clauses.append(declared)
    clauses.extend(_json_filters(query, params))
    clauses.extend(_field_filters(query, params))
    clauses.extend(_sensor_filters(query, params))
    if org_id is not None:
        clauses.append(sql.SQL("org_id = %(org)s"))
        params["org"] = org_id
    if query.order_by is not None:
        return _ordered(conn, query, clauses, params)
    if query.max_event_count is not None:
        _check_size(conn, query.max_event_count, clauses, params)
    if query.after is not None:
        clauses.append(sql.SQL("ingest_seq > %(after)s"))
        params["after"] = query.after
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
    # Each event comes with its recorded errorDeclaration (as captured) or NULL, in the same
    # statement: one unique-index probe per event of the page.
    if query.match_epcs or query.match_classes:
        # An item's or a lot's events are few: found by the GIN indexes, then ordered. Left to
        # itself, the planner may walk the ingest_seq index in order, filtering every event on
        # the way, betting on finding a page's worth soon (it does so on a hypertable, whose
        # chunks it can merge in ingest_seq order).
        statement = sql.SQL(
            "WITH matching AS MATERIALIZED"
            " (SELECT ingest_seq, event, context, received_at, event_hash, as_captured"
            " FROM events WHERE {})"
            " SELECT ingest_seq, event, context, received_at, event_hash, as_captured,"
            " (SELECT d.declaration"
            " FROM error_declarations d WHERE d.event_hash = matching.event_hash) AS declaration"
            " FROM matching"
            " ORDER BY ingest_seq LIMIT %(limit)s"
        )
    else:
        statement = sql.SQL(
            "SELECT ingest_seq, event, context, received_at, event_hash, as_captured,"
            " (SELECT d.declaration"
            " FROM error_declarations d WHERE d.event_hash = events.event_hash) AS declaration"
            " FROM events WHERE {}"
            " ORDER BY ingest_seq LIMIT %(limit)s"
        )
    with conn.cursor(row_factory=class_row(_FoundEvent)) as cursor:
        # The stored JSON was written by orjson (capture), so orjson reads it back: 0.09 ms
        # for 100 of bench/query.py's events, against 0.28 ms with the standard library
        # (measured in-process, 2026-12-04).
        set_json_loads(orjson.loads, cursor)
        rows = cursor.execute(statement.format(where), params).fetchall()
    page = rows[: params["limit"] - 1]
    more = len(rows) > len(page)
    return _page(page, page[-1].ingest_seq if more and page else None)


def _page(page: Sequence[_FoundEvent], next_cursor: int | str | None) -> EventPage:
    return EventPage(
        [row.event for row in page],
        next_cursor,
        [row.context for row in page],
        [row.received_at for row in page],
        [bytes(row.event_hash) for row in page],
        [row.declaration for row in page],
        [row.as_captured for row in page],
    )


def _check_size(
    conn: Conn, limit: int, clauses: list[sql.Composable], params: dict[str, Any]
) -> None:
    """maxEventCount: QueryTooLargeError if more than `limit` events match (the whole query,
    not the page); counts at most limit + 1 of them."""
    where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE {} LIMIT %(max_count)s) matching"
        ).format(where),
        {**params, "max_count": limit + 1},
    ).fetchone()
    if row is not None and int(row[0]) > limit:
        raise QueryTooLargeError(limit)


def _ordered(
    conn: Conn, query: EventFilter, clauses: list[sql.Composable], params: dict[str, Any]
) -> EventPage:
    """A page under orderBy: keyset on (key, ingest_seq), ingest_seq breaking ties, in the
    asked direction; eventCountLimit: the first N of that order, paged."""
    assert query.order_by in ("event_time", "received_at")  # parse_event_query's columns
    key = sql.Identifier(query.order_by)
    direction = sql.SQL("DESC" if query.order_descending else "ASC")
    order = sql.SQL("{} {}, ingest_seq {}").format(key, direction, direction)
    if query.max_event_count is not None:
        _check_size(conn, query.max_event_count, clauses, params)
    keyset: list[sql.Composable] = []
    if query.after_key is not None:
        params["after_key"], params["after_seq"] = query.after_key
        # The row comparison is the keyset; the plain bound on the key alone (implied by it)
        # lets an index on the key (events_org_time_idx, events_received_at_idx) start there.
        keyset.append(
            sql.SQL(
                "({key}, ingest_seq) {op} (%(after_key)s, %(after_seq)s)"
                " AND {key} {op}= %(after_key)s"
            ).format(key=key, op=sql.SQL("<" if query.order_descending else ">"))
        )
    columns = sql.SQL(
        "ingest_seq, event, context, received_at, event_hash, as_captured, event_time,"
        " (SELECT d.declaration FROM error_declarations d"
        " WHERE d.event_hash = {}.event_hash) AS declaration"
    )
    if query.event_count_limit is None and not (query.match_epcs or query.match_classes):
        where = sql.SQL(" AND ").join([*clauses, *keyset]) if clauses or keyset else sql.SQL("true")
        statement = sql.SQL("SELECT {} FROM events WHERE {} ORDER BY {} LIMIT %(limit)s").format(
            columns.format(sql.Identifier("events")), where, order
        )
    else:
        # The matching events first, then the page cut from them: an item's or a lot's events
        # found by the GIN indexes (as in ingest order, above), or the first N of the whole
        # query (eventCountLimit).
        first: sql.Composable = sql.SQL("")
        if query.event_count_limit is not None:
            params["count_limit"] = query.event_count_limit
            first = sql.SQL(" ORDER BY {} LIMIT %(count_limit)s").format(order)
        where = sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true")
        statement = sql.SQL(
            "WITH matching AS MATERIALIZED (SELECT * FROM events WHERE {}{})"
            " SELECT {} FROM matching WHERE {} ORDER BY {} LIMIT %(limit)s"
        ).format(
            where,
            first,
            columns.format(sql.Identifier("matching")),
            sql.SQL(" AND ").join(keyset) if keyset else sql.SQL("true"),
            order,
        )
    with conn.cursor(row_factory=class_row(_OrderedEvent)) as cursor:
        set_json_loads(orjson.loads, cursor)
        rows = cursor.execute(statement, params).fetchall()
    page = rows[: params["limit"] - 1]
    token = None
    if len(rows) > len(page) and page:
        last = page[-1]
        at = last.event_time if query.order_by == "event_time" else last.received_at
        token = page_token(query.order_by, query.order_descending, at, last.ingest_seq)
    return _page(page, token)


@dataclass(frozen=True)
class _FoundEvent:
    """A row of the query's statement, in its column order."""

    ingest_seq: int
    event: dict[str, Any]
    context: Any
    received_at: datetime
    event_hash: bytes
    as_captured: dict[str, Any] | None
    declaration: dict[str, Any] | None


@dataclass(frozen=True)
class _OrderedEvent(_FoundEvent):
    """A row of an ordered query: its event_time, the key of orderBy=eventTime, too."""

    event_time: datetime = datetime.min


def _declared(query: EventFilter, params: dict[str, Any]) -> sql.Composable | None:
    """The error-declaration filters as one EXISTS over `error_declarations`; None if none."""
    tests: list[sql.Composable] = []
    if query.error_reasons is not None:
        params["error_reasons"] = sorted(query.error_reasons)
        tests.append(sql.SQL("d.reason = ANY(%(error_reasons)s)"))
    if query.corrective_event_ids is not None:
        params["corrective"] = sorted(query.corrective_event_ids)
        tests.append(sql.SQL("d.corrective_event_ids && %(corrective)s::text[]"))
    for bound, key, value in (
        (">=", "ge_declared", query.ge_declaration_time),
        ("<", "lt_declared", query.lt_declaration_time),
    ):
        if value is not None:
            params[key] = value
            tests.append(
                sql.SQL("d.declaration_time {} {}").format(sql.SQL(bound), sql.Placeholder(key))
            )
    if not tests and not query.declared:
        return None
    return sql.SQL(
        "EXISTS (SELECT 1 FROM error_declarations d WHERE d.event_hash = events.event_hash{})"
    ).format(sql.SQL("").join(sql.SQL(" AND ") + test for test in tests))


# The columns the REST binding's discovery lists name (epcs: each instance identifier).
DISCOVERY_COLUMNS = {
    "bizSteps": "biz_step",
    "dispositions": "disposition",
    "bizLocations": "biz_location",
    "readPoints": "read_point",
    "epcs": "epcs",
}


def distinct_values(
    conn: Conn, resource: str, org_id: int | None, limit: int, after: str | None = None
) -> list[str]:
    """The distinct values of a discovery list among the events the org may see (None: all),
    in order, at most `limit`, from the first after `after` (a page's last value)."""
    column = DISCOVERY_COLUMNS[resource]
    value = sql.SQL("unnest(epcs)") if column == "epcs" else sql.Identifier(column)
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT v FROM (SELECT {} AS v FROM events"
            " WHERE %(org)s::bigint IS NULL OR org_id = %(org)s) found"
            " WHERE v IS NOT NULL AND (%(after)s::text IS NULL OR v > %(after)s)"
            " ORDER BY v LIMIT %(limit)s"
        ).format(value),
        {"org": org_id, "limit": limit, "after": after},
    ).fetchall()
    return [str(row[0]) for row in rows]


# A location with descendants (WD_): a GLN without an extension; its sub-locations are the
# same GLN with one (docs/api.md: tracefin keeps no master-data hierarchy).
_GLN_LOCATION = re.compile(r"https://id\.gs1\.org/414/\d{13}", re.ASCII)
# The quantity lists of the standard's QuantityElements, for the _quantity filters.
_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def _json_filters(query: EventFilter, params: dict[str, Any]) -> Iterator[sql.Composable]:
    """The filters read from the stored event JSON: EPC patterns, quantities, persistent
    dispositions, business transactions, sources and destinations, locations with descendants.
    Field names come from epcis/query.py's fixed tables; every value is a bind parameter."""
    for index, match in enumerate((*query.match_epc_patterns, *query.match_class_patterns)):
        exact, regexes = f"pe{index}", f"pr{index}"
        params[exact], params[regexes] = sorted(match.exact), sorted(match.regexes)
        classes = index >= len(query.match_epc_patterns)
        paths = [f"$.{f}[*].epcClass" if classes else f"$.{f}[*]" for f in match.fields]
        # Every identifier of the asked fields, compared with the values and the patterns:
        # no index serves a pattern, so this reads each candidate event's JSON.
        yield sql.SQL(
            "EXISTS (SELECT 1 FROM ({}) ids(v) WHERE ids.v = ANY({}) OR ids.v ~ ANY({}))"
        ).format(
            sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT jsonb_path_query(event, {}::jsonpath) #>> '{{}}'").format(
                    sql.Literal(path)
                )
                for path in paths
            ),
            sql.Placeholder(exact),
            sql.Placeholder(regexes),
        )
    if query.quantity:
        condition = " && ".join(
            f"@.quantity {op} $q{index}" for index, (op, _) in enumerate(query.quantity)
        )
        path = (
            "$ ? ("
            + " || ".join(f"exists(@.{name}[*] ? ({condition}))" for name in _QUANTITY_LISTS)
            + ")"
        )
        # The values are checked decimals (epcis/query.py), written as JSON numbers.
        params["quantity_vars"] = (
            "{"
            + ", ".join(f'"q{index}": {value}' for index, (_, value) in enumerate(query.quantity))
            + "}"
        )
        params["quantity_path"] = path
        yield sql.SQL(
            "jsonb_path_exists(event, %(quantity_path)s::jsonpath, %(quantity_vars)s::jsonb)"
        )
    for key, values in (("set", query.persistent_set), ("unset", query.persistent_unset)):
        if values is not None:
            params[f"persistent_{key}"] = sorted(values)
            yield sql.SQL("(event->'persistentDisposition'->{}) ?| {}::text[]").format(
                sql.Literal(key), sql.Placeholder(f"persistent_{key}")
            )
    for index, party in enumerate(query.parties):
        params[f"party{index}"] = Jsonb({"t": sorted(party.types), "v": sorted(party.values)})
        # In lax mode `==` with an array variable holds if any of its members is equal.
        path = f"$.{party.list_field}[*] ? (@.type == $t && @.{party.id_field} == $v)"
        yield sql.SQL("jsonb_path_exists(event, {}::jsonpath, {})").format(
            sql.Literal(path), sql.Placeholder(f"party{index}")
        )
    for column, values in (
        ("read_point", query.wd_read_points),
        ("biz_location", query.wd_biz_locations),
    ):
        if values is None:
            continue
        params[f"wd_{column}"] = sorted(values)
        params[f"wd_{column}_sub"] = sorted(
            f"{value}/254/" for value in values if _GLN_LOCATION.fullmatch(value)
        )
        yield sql.SQL(
            "({column} = ANY({exact}) OR EXISTS (SELECT 1 FROM unnest({sub}::text[]) p(prefix)"
            " WHERE starts_with({column}, p.prefix)))"
        ).format(
            column=sql.Identifier(column),
            exact=sql.Placeholder(f"wd_{column}"),
            sub=sql.Placeholder(f"wd_{column}_sub"),
        )


# The event's JSON-LD context entries that bind prefixes, as (prefix, IRI) rows: the stored
# context is one entry or an array of them (strings, which bind none, and objects).
_CONTEXT_TERMS = (
    "SELECT d.key AS prefix, d.value AS iri FROM jsonb_array_elements(CASE jsonb_typeof(context)"
    " WHEN 'array' THEN context ELSE jsonb_build_array(context) END) c(entry),"
    " jsonb_each_text(CASE jsonb_typeof(c.entry) WHEN 'object' THEN c.entry"
    " ELSE '{}'::jsonb END) d"
)


def _field_filters(query: EventFilter, params: dict[str, Any]) -> Iterator[sql.Composable]:
    """EQ_/EXISTS_ on extension fields. The keys a field may have in an event are worked out
    from that event's context: `prefix:local` for each prefix bound to the field's namespace
    (or the one CURIE prefix asked, if the context declares it), and the full IRI. Keys and
    values are bind parameters; the only jsonpath is a fixed one."""
    for index, match in enumerate(query.fields):
        local, names = f"fl{index}", f"fn{index}"
        params[local] = match.local
        template: sql.SQL
        if match.prefix is None:
            params[names] = sorted(match.namespaces)
            template = sql.SQL(
                "ARRAY(SELECT t.prefix || ':' || {local} FROM ({terms}) t"
                " WHERE t.iri = ANY({names})"
                " UNION ALL SELECT n || {local} FROM unnest({names}::text[]) n)"
            )
        else:
            params[names] = match.prefix
            template = sql.SQL(
                "ARRAY(SELECT t.prefix || ':' || {local} FROM ({terms}) t WHERE t.prefix = {names})"
            )
        keys = template.format(
            local=sql.Placeholder(local),
            names=sql.Placeholder(names),
            terms=sql.SQL(_CONTEXT_TERMS),
        )
        base = sql.SQL("(event->'ilmd')" if match.ilmd else "event")
        if match.inner:
            # Every object nested below the top level (in the extension fields' values).
            holders = sql.SQL(
                "(SELECT o.v FROM jsonb_path_query({}, 'strict $.*.**') o(v)"
                " WHERE jsonb_typeof(o.v) = 'object')"
            ).format(base)
        else:
            holders = sql.SQL("(SELECT {} AS v WHERE jsonb_typeof({}) = 'object')").format(
                base, base
            )
        test: sql.Composable = sql.SQL("true")
        if match.op is not None:
            bound = f"fb{index}"
            params[bound] = match.bound
            # CASE, so a value of another form is never cast (AND does not promise an order).
            if isinstance(match.bound, datetime):
                value = sql.SQL(
                    "CASE WHEN jsonb_typeof(kv.value) = 'string' AND kv.value #>> '{{}}' ~ {form}"
                    " THEN (kv.value #>> '{{}}')::timestamptz END"
                ).format(form=sql.Literal(_TIME_FORM))
            else:
                value = sql.SQL(
                    "CASE WHEN jsonb_typeof(kv.value) = 'number'"
                    " THEN (kv.value #>> '{{}}')::numeric"
                    " WHEN jsonb_typeof(kv.value) = 'string' AND kv.value #>> '{{}}' ~ {form}"
                    " THEN (kv.value #>> '{{}}')::numeric END"
                ).format(form=sql.Literal(_DECIMAL_FORM))
            test = sql.SQL("{} {} {}").format(value, sql.SQL(match.op), sql.Placeholder(bound))
        elif match.values is not None:
            values = f"fv{index}"
            params[values] = sorted(match.values)
            # Scalars compared as their text (a JSON string's value, a number's digits).
            test = sql.SQL(
                "jsonb_typeof(kv.value) IN ('string', 'number', 'boolean')"
                " AND kv.value #>> '{{}}' = ANY({})"
            ).format(sql.Placeholder(values))
        yield sql.SQL(
            "EXISTS (SELECT 1 FROM {holders} h, jsonb_each(h.v) kv"
            " WHERE kv.key = ANY({keys}) AND {test})"
        ).format(holders=holders, keys=keys, test=test)


# A decimal string (an extension value from XML, say): compared as a number; the exponent
# bounded so the cast cannot fail.
_DECIMAL_FORM = f"^{DECIMAL_FORM}$"
# EPCIS times as sensor reports carry them (checked by capture); cast only what has this form.
# The offset at most 14:00 (RFC 3339 time zones; PostgreSQL refuses past 15:59): a reading with
# another is not compared, rather than failing the whole query.
_TIME_FORM = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-](0\d|1[0-3]):[0-5]\d|[+-]14:00)$"


def _sensor_filters(query: EventFilter, params: dict[str, Any]) -> Iterator[sql.Composable]:
    """The sensor parameters, each on the event's sensorElementList: jsonpaths built from
    epcis/query.py's fixed member names and comparisons, every value a jsonpath variable."""
    reports = "$.sensorElementList[*].sensorReport[*]"
    for index, match in enumerate(query.sensors):
        name = f"sensor{index}"
        if match.when is not None:
            params[name] = match.when
            yield sql.SQL(
                "EXISTS (SELECT 1 FROM jsonb_path_query(event, {}::jsonpath) t(v)"
                " WHERE jsonb_typeof(t.v) = 'string' AND t.v #>> '{{}}' ~ {}"
                " AND (t.v #>> '{{}}')::timestamptz {} {})"
            ).format(
                # A report's time, or its element's metadata startTime / endTime.
                sql.Literal(
                    f"{reports}.time"
                    if match.field == "time"
                    else f"$.sensorElementList[*].sensorMetadata.{match.field}"
                ),
                sql.Literal(_TIME_FORM),
                sql.SQL(match.op),
                sql.Placeholder(name),
            )
            continue
        if match.number is not None:
            condition = f"@.{match.field} {match.op} $v"
            # A checked decimal (epcis/query.py), written as a JSON number.
            variables = f'{{"v": {match.number}'
            if match.uom is not None:
                condition += " && @.uom == $u"
                variables += f', "u": "{match.uom}"'
            params[name] = variables + "}"
        else:
            condition = f"@.{match.field} == $v"
            params[name] = Jsonb({"v": list(match.values)})
        paths = [f"{reports} ? ({condition})"]
        if match.metadata_too:
            paths.append(f"$.sensorElementList[*].sensorMetadata ? ({condition})")
        yield sql.SQL("({})").format(
            sql.SQL(" OR ").join(
                sql.SQL("jsonb_path_exists(event, {}::jsonpath, {}::jsonb)").format(
                    sql.Literal(path), sql.Placeholder(name)
                )
                for path in paths
            )
        )
