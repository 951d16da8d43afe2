DROP TRIGGER humans_changed ON humans;
DROP TRIGGER skill_stats_changed ON skill_stats;
DROP TRIGGER person_states_changed ON person_states;
DROP TRIGGER humans_truncated ON humans;
DROP TRIGGER skill_stats_truncated ON skill_stats;
DROP TRIGGER person_states_truncated ON person_states;
DROP FUNCTION goliath_decision_inputs_changed();
DROP TABLE decision_inputs_version;
