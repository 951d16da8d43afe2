-- The model parameters decisions are made with, stored once per distinct set. They are the
-- same for every decision a process makes, and were about 600 bytes of every decision's
-- stored inputs. A decision's inputs now name their set as "params_id" (the SHA-256 of the
-- set as stored, so a set is never changed once written); older decisions carry "params".
CREATE TABLE model_params (
    id         TEXT PRIMARY KEY,
    params     JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
