-- Who owns a work item now, and where it lives in Jira.
ALTER TABLE work_items
    ADD COLUMN assignee_id      TEXT REFERENCES humans (id) ON DELETE SET NULL,
    ADD COLUMN undecided_reason TEXT,
    ADD COLUMN jira_key         TEXT,
    ADD COLUMN jira_issue_id    TEXT,
    ADD COLUMN resolved_at      TIMESTAMPTZ;
CREATE INDEX work_items_open_by_assignee ON work_items (assignee_id)
    WHERE status IN ('assigned', 'reopened');
CREATE INDEX work_items_jira_key ON work_items (jira_key);

-- One routing decision per work item, with everything needed to explain and replay it.
CREATE TABLE decisions (
    work_item_id     TEXT PRIMARY KEY REFERENCES work_items (id) ON DELETE CASCADE,
    primary_human_id TEXT,
    backup_ids       TEXT[] NOT NULL DEFAULT '{}',
    confidence       DOUBLE PRECISION NOT NULL,
    explanation      TEXT NOT NULL,
    undecided_reason TEXT,
    ranking          JSONB NOT NULL,
    excluded         JSONB NOT NULL,
    inputs           JSONB NOT NULL,
    model_version    TEXT NOT NULL,
    decided_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Outcomes the learner consumed, each exactly once (keyed by the event that reported it).
CREATE TABLE outcomes (
    event_id        TEXT PRIMARY KEY,
    work_item_id    TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    human_id        TEXT,
    to_human_id     TEXT,
    occurred_at     TIMESTAMPTZ NOT NULL,
    resolve_seconds DOUBLE PRECISION,
    detail          JSONB NOT NULL DEFAULT '{}',
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX outcomes_work_item ON outcomes (work_item_id, occurred_at);

-- What the learner believes about each person for a service and severity.
CREATE TABLE skill_stats (
    human_id   TEXT NOT NULL,
    service    TEXT NOT NULL,
    severity   TEXT NOT NULL,
    state      JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (service, human_id, severity)
);

-- A readable history of each work item (decided, Jira issue created, handed off, resolved...).
CREATE TABLE work_item_events (
    id           BIGSERIAL PRIMARY KEY,
    work_item_id TEXT NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    detail       JSONB NOT NULL DEFAULT '{}',
    occurred_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX work_item_events_item ON work_item_events (work_item_id, id);
