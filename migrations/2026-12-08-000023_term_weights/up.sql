-- The weights of the score's evidence terms (success, on_call, experience), fitted online to
-- whether each pick turned out right (goliath-routing/8). One row: the deployment's current
-- weights and the state of their fit, as JSON (routing::TermWeights; '{}' is the prior). A
-- decision reads them with the rest of its inputs and stores the ones it used, so a change
-- moves the decision-inputs counter like any learned state.
CREATE TABLE term_weights (
    only_row   BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    weights    JSONB NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO term_weights DEFAULT VALUES;

CREATE CONSTRAINT TRIGGER term_weights_changed AFTER INSERT OR UPDATE OR DELETE ON term_weights
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION goliath_decision_inputs_changed();
