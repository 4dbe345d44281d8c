-- Alerts pushed to financiers (issue 14): an outbox. Every risk flag raised on a lot pledged
-- to a financier (or on its line), every margin call opened, changed, cured or escalated, and
-- every decision on its lines is an alert, written by triggers in the transaction that wrote
-- the fact, so none is lost and none is sent for a fact that rolled back. Financiers read them
-- with a cursor (GET /v1/alerts?after=), receive each one at least once on MQTT
-- (tf/{financier}/alerts) and, when they registered a webhook, there too (HMAC-signed); a
-- failed delivery is retried with backoff (alert_deliveries, one row per alert and channel).
CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    financier_org_id bigint NOT NULL REFERENCES orgs (id),
    kind             text NOT NULL,
    line_id          bigint,
    lot_uri          text,
    detail           jsonb NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_financier_idx ON alerts (financier_org_id, id);

CREATE TABLE alert_webhooks (
    financier_org_id bigint PRIMARY KEY REFERENCES orgs (id),
    url              text NOT NULL CHECK (url ~ '^https?://'),
    secret           text NOT NULL,
    set_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_deliveries (
    alert_id     bigint NOT NULL REFERENCES alerts (id),
    channel      text NOT NULL CHECK (channel IN ('mqtt', 'webhook')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    last_error   text,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_at) WHERE delivered_at IS NULL;

CREATE FUNCTION tracefin_alert(financier bigint, kind text, line bigint, lot text, detail jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    made bigint;
BEGIN
    IF financier IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO alerts (financier_org_id, kind, line_id, lot_uri, detail)
    VALUES (financier, kind, line, lot, detail) RETURNING id INTO made;
    INSERT INTO alert_deliveries (alert_id, channel) VALUES (made, 'mqtt');
    IF EXISTS (SELECT 1 FROM alert_webhooks w WHERE w.financier_org_id = financier) THEN
        INSERT INTO alert_deliveries (alert_id, channel) VALUES (made, 'webhook');
    END IF;
END $$;

CREATE FUNCTION tracefin_alert_flag() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    line bigint := NEW.line_id;
BEGIN
    IF line IS NULL AND NEW.lot_uri IS NOT NULL THEN
        SELECT p.line_id INTO line FROM pledges p
         WHERE p.lot_uri = NEW.lot_uri AND p.released_at IS NULL;
    END IF;
    PERFORM tracefin_alert(
        (SELECT c.financier_org_id FROM credit_lines c WHERE c.id = line),
        CASE WHEN TG_OP = 'INSERT' THEN 'flag_raised' ELSE 'flag_cleared' END,
        line, NEW.lot_uri,
        jsonb_build_object('flag', NEW.kind, 'detail', NEW.detail,
                           'reason', NEW.cleared_reason));
    RETURN NULL;
END $$;
CREATE TRIGGER risk_flags_alert AFTER INSERT ON risk_flags
    FOR EACH ROW EXECUTE FUNCTION tracefin_alert_flag();
CREATE TRIGGER risk_flags_cleared_alert AFTER UPDATE OF cleared_at ON risk_flags
    FOR EACH ROW WHEN (OLD.cleared_at IS NULL AND NEW.cleared_at IS NOT NULL)
    EXECUTE FUNCTION tracefin_alert_flag();

CREATE FUNCTION tracefin_alert_margin_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tracefin_alert(
        (SELECT c.financier_org_id FROM credit_lines c WHERE c.id = NEW.line_id),
        CASE WHEN TG_OP = 'UPDATE' AND OLD.state = NEW.state THEN 'margin_call_changed'
             ELSE 'margin_call_' || NEW.state END,
        NEW.line_id, NEW.lot_uri,
        jsonb_build_object('call', NEW.id, 'amount_minor', NEW.amount_minor,
                           'currency', NEW.currency, 'state', NEW.state, 'due', NEW.due_at));
    RETURN NULL;
END $$;
CREATE TRIGGER margin_calls_alert AFTER INSERT OR UPDATE OF state, amount_minor ON margin_calls
    FOR EACH ROW EXECUTE FUNCTION tracefin_alert_margin_call();

CREATE FUNCTION tracefin_alert_decision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tracefin_alert(c.financier_org_id, 'decision', a.line_id, a.lot_uri,
                           jsonb_build_object('application', a.id, 'decision', NEW.kind,
                                              'approved_minor', NEW.approved_minor,
                                              'reasons', to_jsonb(NEW.reasons)))
       FROM applications a JOIN credit_lines c ON c.id = a.line_id
      WHERE a.id = NEW.application_id;
    RETURN NULL;
END $$;
CREATE TRIGGER decisions_alert AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION tracefin_alert_decision();
