-- Context tags known at intake (PagerDuty teams, escalation policy, incident type...), which
-- the model uses as extra evidence keys.
ALTER TABLE work_items ADD COLUMN context TEXT[] NOT NULL DEFAULT '{}';

-- Learned state per person beyond (service, severity): 'overall' (key '') pools every service,
-- 'tag' (key = the tag) per context tag.
CREATE TABLE person_states (
    human_id   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key, human_id)
);
