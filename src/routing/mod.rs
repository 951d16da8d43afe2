//! The routing model: who should own an incident, and what an outcome teaches us.
//!
//! This module is pure: no database, no HTTP, no wall clock. [`decide`] turns a
//! [`DecisionInput`] into a [`Decision`]; [`apply_outcome`] folds one outcome into a stored
//! [`SkillState`]. The same input always yields the same decision, bit for bit.
//!
//! # Model
//!
//! Goliath routes by **expected time to a good resolution**. If a person resolves an incident
//! without handing it on with probability `p`, and takes time `T` when they do, then a hand-off
//! that costs about one more attempt gives an expected cost of `T / p` (a geometric number of
//! attempts). The score of a candidate is the log of the inverse cost, relative to the service's
//! typical time, split into named components that add up:
//!
//! `score = w_s * success + speed + load + w_o * on_call + w_e * experience + exploration`
//!
//! The evidence terms' weights ([`TermWeights`]) are fitted online to whether each pick turned
//! out right, and stored with the decision; they start at 1.
//!
//! * **success** = `ln p`, where `p` is the posterior mean of a Beta-Bernoulli belief that the
//!   person resolves this kind of incident without a hand-off or a reopen. Evidence is pooled
//!   hierarchically (empirical-Bayes shrinkage): the prior mean is the service's pooled success
//!   rate over all candidates (itself shrunk to a global prior), moved towards the person's own
//!   record on *other* services when the glue supplies it (`CandidateInput::overall`); on top of
//!   that prior sit the person's evidence for this service and severity at full weight, their
//!   evidence for this service at other severities at a discount, and their evidence on the
//!   incident's context tags (product, component...) at a discount. Sparse severities therefore
//!   fall back on service-level, person-level and global evidence instead of on nothing.
//! * **speed** = `mu_service - mu_person`: the person's expected log time to resolve, a
//!   log-normal estimate shrunk in the same way, against the service's pooled log time. Severity
//!   shifts everyone's times alike, so each severity's offset from the service mean (estimated
//!   over all candidates, shrunk to 0) is removed first: a person's time record does not depend
//!   on their mix of severities, and `expected_seconds` adds the incident's offset back. Each
//!   person's prior mean is the service's pooled log time, moved by their record on other
//!   services only as far as such records are shown to predict times here: the weight is the
//!   best linear predictor `cov / (tau_e^2 + sigma_e^2 / n)`, where `cov` is the covariance of
//!   the candidates' true times elsewhere and here (mean cross-product of the centred means,
//!   shrunk to 0 by its own sampling error) and `tau_e^2` the spread of true times elsewhere;
//!   with fewer than three candidates timed in both places, the prior is the pool. The
//!   shrinkage strength towards that prior is empirical Bayes: `sigma^2 / tau^2`, where
//!   `sigma^2` is the pooled within-person variance of a single time and `tau^2` the spread of
//!   the candidates' true log times about their prior means (a Paule-Mandel estimate, which
//!   subtracts each mean's sampling noise), so noisy times move nobody much. Only resolves by
//!   someone who had the incident from the start are timed: a hold taken over mid-incident
//!   times only the end of someone else's work, and would make late closers look fast.
//! * **load** = `-ln(1 + load_weight * over / capacity)`: busy people are slower. With a
//!   `max_active`, `over` is every open item and `capacity` that cap; without, `over` is the
//!   open items above the load at which the person still takes work on (the mean `m` of the
//!   loads they took work over at, plus one Poisson standard deviation `sqrt(m)`) and
//!   `capacity` is `default_capacity`.
//! * **on_call** (learned): how much more likely the person PagerDuty paged is to end up
//!   resolving than the experience share alone says. Goliath keeps, per person, a decayed
//!   record of the incidents on which they were on call *and Goliath did not assign it to them*,
//!   and how many of those they resolved anyway (kept). Its rate `q` is shrunk to the same rate
//!   for the person on other services, then to the pool of every candidate's records
//!   (eligible or not) for this service, then anywhere, then to `on_call_prior_keep`. Treating the resolver as "the
//!   on-call person with probability `q`, else someone drawn by the experience share `s`", the
//!   component is the log lift `ln(1 + q / ((1 - q) * max(s, 1/K)))` for the on-call person (K
//!   eligible candidates; the floor keeps a rarely seen on-call person from getting an
//!   unbounded lift). Assignments Goliath made are left out, so the rate never echoes Goliath's
//!   own choices: where its recommendations are followed it falls towards 0 and the term fades;
//!   where on-call people keep their pages (the team's practice), it grows, per person.
//! * **experience** = `experience_weight * ln(share)`: who owns this kind of work. The share
//!   is a Dirichlet-multinomial predictive share of the next good resolution among the eligible
//!   candidates, in levels: the service's resolutions (shrunk to an even share with
//!   `experience_concentration` pseudo-counts), and on the incident's context tags the share of
//!   those resolutions, shrunk to the service share. Context records are kept per tag across
//!   services, so a person's context resolutions count here in proportion to the share of
//!   their owned work that is in this service; where the glue also supplies the part of a
//!   record on this service ([`ContextRecord::service`]), the share is that exact part, shrunk
//!   to the estimate, so a tag confined to one service does not count against people who also
//!   work elsewhere. Owned work (`SkillState::owned`) is counted at take-overs and at resolves
//!   by whoever had the work from the start; Goliath's own right picks (`SkillState::assigned`)
//!   count at the service's take-over rate (how often people took over what picks handed on):
//!   fully where people route the work, not at all under full auto-assignment, so the share
//!   cannot lock in Goliath's past choices.
//! * **exploration**: on sev3/sev4 Goliath uses Thompson sampling: the success log-odds and the
//!   log time are drawn from their posteriors (normal approximations, scaled by
//!   `explore_scale`), seeded from the work item id and the person, so people with little
//!   history get tried where mistakes are cheap, and the draw is reproducible. The draw shrinks
//!   as evidence accumulates (it is a posterior draw), and it is further scaled by the share of
//!   the service's owned work that Goliath's own picks produced (with one pseudo unit), against
//!   what people showed, take-overs included as they happen: where people route the work, a
//!   recommendation produces little evidence, so exploring would mostly cost. A recommendation
//!   only (shadow mode, [`DecisionInput::recommend_only`]) gets no draw. On sev1/sev2 there
//!   is no optimism: the score uses a lower credible bound (`z` standard deviations below the
//!   posterior mean for success, above for time), so an unproven person does not get a critical
//!   incident over a proven one. The component is the (signed) difference from the mean score.
//!
//! All evidence decays with a half-life measured in *event* time (the incident's `at`), so old
//! behaviour fades; decay is applied lazily on read and on update.
//!
//! **Confidence** is the probability that the pick is right (takes and resolves the work):
//! the pick's weighted evidence terms read as log-odds, `sigmoid(a + w_s * success +
//! w_o * on_call + w_e * experience)`, the quantity the term weights are fitted to.
//!
//! Learning ([`apply_outcome`]): a resolve by the assignee adds one success and, unless they
//! took it over, one log-time observation (and one `owned` unit when Goliath had not assigned it to them and they had not
//! taken it over); a take-over adds one `owned` unit at once, with the load it was taken on at;
//! a hand-off adds one failure for the person who handed on work they were given, or withdraws
//! the take-over's `owned` unit from one who passes on work they took (no failure: people were
//! routing it); an escalation is a failure either way; a reopen withdraws one success from the
//! resolver and adds a failure. [`apply_on_call_outcome`] adds one on-call observation to the
//! person who was on call. The glue applies each outcome to every state it keeps for that
//! person (the (service, severity) state, the per-context-tag states, and the person's overall
//! state), all with the same functions.
//!
//! # Code
//!
//! [`decide`] is a pipeline over phases, each in its own file: `evidence` (each candidate's
//! decayed records, the service pool, eligibility, severity offsets), `priors` (shrinkage
//! targets and strengths), `exploration` (Thompson draw or credible bound), `scoring` (the
//! components), `ranking` (order and confidence) and `explain`. Learning is in `learning`, the
//! public types in `types`; both are re-exported here.

mod counting;
mod evidence;
mod explain;
mod exploration;
mod learning;
mod priors;
mod ranking;
pub mod rng;
mod scoring;
mod types;
mod weights;

pub use counting::{picks, picks_of, PickEntry};
pub use learning::{apply_on_call_outcome, apply_outcome};
pub use types::{
    CandidateInput, ContextRecord, Decision, DecisionInput, Excluded, ExclusionReason, ModelParams,
    OutcomeKind, ParseSeverityError, ScoreComponents, ScoredCandidate, Severity, SkillRecord,
    SkillState, MODEL_VERSION,
};
pub use weights::{TermWeights, TERM_NAMES};

use exploration::Exploration;

/// Scores the eligible candidates and picks an owner. Pure and deterministic.
pub fn decide(input: &DecisionInput, params: &ModelParams) -> Decision {
    // Each candidate's decayed evidence, the service pool, and who is eligible.
    let mut gathered = evidence::gather(input, params);
    // Times are compared net of each severity's offset; the incident's is added back.
    let offsets = evidence::remove_severity_offsets(&mut gathered, input.severity, params);
    // What each candidate's own evidence is shrunk towards, and how hard.
    let priors = priors::estimate(&gathered, params);
    // Optimism on sev3/sev4 (a posterior draw), caution on sev1/sev2 (a credible bound).
    let explore = Exploration::new(input, &gathered.pool, params);
    let offset = offsets[input.severity as usize];
    let scored = scoring::score(input, &gathered.work, &priors, offset, &explore, params);
    let mut ranked = ranking::rank(scored);
    // Where counting who owns such work has lately been right more often, it orders the picks.
    let by_count = counting::follow(&mut ranked, &input.weights);
    let excluded = gathered.excluded;
    let Some(confidence) = ranking::confidence(&ranked, &input.weights) else {
        let reason = explain::undecided(input, &excluded);
        return Decision {
            primary: None,
            backups: Vec::new(),
            confidence: 0.0,
            ranking: Vec::new(),
            excluded,
            explanation: reason.clone(),
            undecided_reason: Some(reason),
            model_version: MODEL_VERSION.to_string(),
        };
    };
    let explanation = if by_count {
        explain::by_count(&ranked, &input.weights)
    } else {
        explain::explain(&ranked, input, params)
    };
    Decision {
        primary: Some(ranked[0].human_id.clone()),
        backups: ranked
            .iter()
            .skip(1)
            .take(2)
            .map(|r| r.human_id.clone())
            .collect(),
        confidence,
        ranking: ranked,
        excluded,
        explanation,
        undecided_reason: None,
        model_version: MODEL_VERSION.to_string(),
    }
}

#[cfg(test)]
mod tests;
