//! Learning: what one outcome teaches the model about a person. Both functions fold one
//! observation into a stored [`SkillState`], decaying its earlier evidence to the event's time
//! first; the glue applies them to every state it keeps for the person.

use chrono::{DateTime, Utc};

use super::{ModelParams, OutcomeKind, SkillState};

/// Folds one outcome into a state, at event time `at` (earlier evidence decays first).
pub fn apply_outcome(
    state: &mut SkillState,
    kind: &OutcomeKind,
    at: DateTime<Utc>,
    params: &ModelParams,
) {
    state.decay_to(at, params);
    match kind {
        OutcomeKind::Resolved {
            seconds_to_resolve,
            goliath_assigned,
            took_over,
        } => {
            state.successes += 1.0;
            // Ownership was counted at the take-over, if they took it over. Goliath's own right
            // picks count too: a lookup that counts who resolves the work sees them, and
            // leaving them out would move the share away from every pick that was right.
            if !took_over {
                state.owned += 1.0;
                if *goliath_assigned {
                    state.assigned += 1.0;
                }
            }
            // A hold that began mid-incident times only the end of the work: whoever takes an
            // incident over to close it would look fast. Only a resolver who had the incident
            // from the start is timed.
            if !took_over && seconds_to_resolve.is_finite() && *seconds_to_resolve >= 0.0 {
                let l = seconds_to_resolve.max(params.min_seconds).ln();
                state.time_weight += 1.0;
                state.log_time_sum += l;
                state.log_time_sq_sum += l * l;
            }
        }
        OutcomeKind::HandedOff { taken_over_at } => {
            // Work given to them (by Goliath, or at intake) and handed on counts against them.
            // Work they had taken over themselves and passed on is people routing it: not a
            // failure, but not theirs either, so the ownership counted at the take-over goes.
            match taken_over_at {
                None => state.failures += 1.0,
                Some(taken) => withdraw_take_over(state, *taken, at, params),
            }
        }
        OutcomeKind::Missed { taken_over_at } => {
            state.failures += 1.0;
            if let Some(taken) = taken_over_at {
                withdraw_take_over(state, *taken, at, params);
            }
        }
        OutcomeKind::TookOver { holding } => {
            state.owned += 1.0;
            if let Some(n) = holding {
                state.take_ons += 1.0;
                state.take_on_load_sum += f64::from(*n);
            }
        }
        OutcomeKind::Reopened => {
            state.successes = (state.successes - 1.0).max(0.0);
            state.failures += 1.0;
        }
    }
}

/// Withdraws the owned unit counted at a take-over at `taken`, decayed as everything else since.
fn withdraw_take_over(
    state: &mut SkillState,
    taken: DateTime<Utc>,
    at: DateTime<Utc>,
    params: &ModelParams,
) {
    let counted = SkillState {
        updated_at: Some(taken),
        ..SkillState::default()
    }
    .decay_factor(at, params);
    state.owned = (state.owned - counted).max(0.0);
}

/// Folds one on-call observation into a state of the on-call person, at event time `at`.
///
/// Call it once an incident has its good resolution, if a person was on call for it (paged,
/// eligible) and Goliath never assigned it to them: `kept` is true when that person made the
/// good resolution anyway. Apply it to the same states as [`apply_outcome`] (the person's
/// (service, severity) state, their context-tag states and their overall state). Incidents
/// Goliath assigned to the on-call person are left out, so the rate does not echo Goliath's
/// own choices: if its recommendations are followed, the rate stays near zero; if on-call people
/// keep their pages anyway (the team's practice), Goliath learns how often, per person.
pub fn apply_on_call_outcome(
    state: &mut SkillState,
    kept: bool,
    at: DateTime<Utc>,
    params: &ModelParams,
) {
    state.decay_to(at, params);
    state.on_call_trials += 1.0;
    if kept {
        state.on_call_kept += 1.0;
    }
}
