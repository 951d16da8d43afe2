-- People who can own incidents.
CREATE TABLE humans (
    id                TEXT PRIMARY KEY,
    display_name      TEXT NOT NULL,
    email             TEXT NOT NULL,
    jira_account_id   TEXT NOT NULL,
    pagerduty_user_id TEXT,
    services          TEXT[] NOT NULL DEFAULT '{}',
    max_active        INTEGER,
    active            BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX humans_jira_account_id ON humans (jira_account_id);
CREATE INDEX humans_pagerduty_user_id ON humans (pagerduty_user_id);

-- One row per incident taken in.
CREATE TABLE work_items (
    id                    TEXT PRIMARY KEY,
    type                  TEXT NOT NULL,
    service               TEXT NOT NULL,
    severity              TEXT NOT NULL,
    title                 TEXT NOT NULL,
    description           TEXT,
    status                TEXT NOT NULL DEFAULT 'open',
    origin_system         TEXT NOT NULL,
    pagerduty_incident_id TEXT UNIQUE,
    raw_payload           JSONB NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    received_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX work_items_service ON work_items (service);
CREATE INDEX work_items_status ON work_items (status);

-- Every webhook delivery seen, so an at-least-once retry is answered without a second write.
CREATE TABLE webhook_deliveries (
    source       TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    work_item_id TEXT REFERENCES work_items (id),
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, delivery_id)
);
