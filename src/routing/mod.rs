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
//! `score = success + speed + load + on_call + experience + exploration`
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
//!   subtracts each mean's sampling noise), so noisy times move nobody much.
//! * **load** = `-ln(1 + load_weight * open_items / capacity)`: busy people are slower.
//! * **on_call** (learned): how much more likely the person PagerDuty paged is to end up
//!   resolving than the experience share alone says. Goliath keeps, per person, a decayed
//!   record of the incidents on which they were on call *and Goliath did not assign it to them*,
//!   and how many of those they resolved anyway (kept). Its rate `q` is shrunk to the same rate
//!   for the person on other services, then to the pool of the eligible candidates' records for
//!   this service, then anywhere, then to `on_call_prior_keep`. Treating the resolver as "the
//!   on-call person with probability `q`, else someone drawn by the experience share `s`", the
//!   component is the log lift `ln(1 + q / ((1 - q) * max(s, 1/K)))` for the on-call person (K
//!   eligible candidates; the floor keeps a rarely seen on-call person from getting an
//!   unbounded lift). Assignments Goliath made are left out, so the rate never echoes Goliath's
//!   own choices: where its recommendations are followed it falls towards 0 and the term fades;
//!   where on-call people keep their pages (the team's practice), it grows, per person.
//! * **experience** = `experience_weight * ln(K * share)`: who owns this kind of work. The share
//!   is a Dirichlet-multinomial predictive share of the next good resolution among the eligible
//!   candidates, in two levels: the service's resolutions (shrunk to an even share with
//!   `experience_concentration` pseudo-counts), and on the incident's context tags the share of
//!   those resolutions, shrunk to the service share. Context records are kept per tag across
//!   services, so a person's context resolutions count here in proportion to the share of
//!   their owned work that is in this service. Only resolutions of work that reached the
//!   person without Goliath assigning it count (`SkillState::owned`), for the same reason as
//!   above: under full auto-assignment the share is even and the term is 0, so it cannot lock
//!   in Goliath's past choices; when people route the work, it carries their knowledge of who
//!   handles what.
//! * **exploration**: on sev3/sev4 Goliath uses Thompson sampling: the success log-odds and the
//!   log time are drawn from their posteriors (normal approximations, scaled by
//!   `explore_scale`), seeded from the work item id and the person, so people with little
//!   history get tried where mistakes are cheap, and the draw is reproducible. The draw shrinks
//!   as evidence accumulates (it is a posterior draw), and it is further scaled by the share of
//!   the service's good resolutions that Goliath itself assigned (with one assigned
//!   pseudo-resolution, from `SkillState::owned`): where people route the work or Goliath runs in shadow mode, a
//!   recommendation produces no evidence, so exploring would only cost. On sev1/sev2 there
//!   is no optimism: the score uses a lower credible bound (`z` standard deviations below the
//!   posterior mean for success, above for time), so an unproven person does not get a critical
//!   incident over a proven one. The component is the (signed) difference from the mean score.
//!
//! All evidence decays with a half-life measured in *event* time (the incident's `at`), so old
//! behaviour fades; decay is applied lazily on read and on update.
//!
//! **Confidence** is the estimated probability that the primary really is the best choice:
//! the product, over the next (up to 3) candidates, of `P(score_primary > score_other)` under a
//! normal approximation of both posterior mean scores (their variances come from the same
//! posteriors). It is near 1 when the primary is clearly and reliably ahead, about 0.5 or below
//! when the choice was a coin flip or an exploration pick. A lone eligible candidate gets 1.
//!
//! Learning ([`apply_outcome`]): a resolve by the assignee adds one success and one log-time
//! observation (and one `owned` resolution when Goliath had not assigned it to them); a hand-off
//! adds one failure for the person who handed it on; a reopen withdraws one success from the
//! resolver and adds a failure. [`apply_on_call_outcome`] adds one on-call observation to the
//! person who was on call. The glue applies each outcome to every state it keeps for that
//! person (the (service, severity) state, the per-context-tag states, and the person's overall
//! state), all with the same functions.

pub mod rng;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use rng::{hash_str, mix64, normal_cdf, SplitMix64};

/// Version tag stored with every decision.
/// 3: context-tag ownership counts only the part of a person's owned work in the service.
pub const MODEL_VERSION: &str = "goliath-routing/3";

/// Incident severity; `Sev1` is the most critical.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Sev1,
    Sev2,
    Sev3,
    Sev4,
}

impl Severity {
    /// All severities, most critical first.
    pub const ALL: [Severity; 4] = [
        Severity::Sev1,
        Severity::Sev2,
        Severity::Sev3,
        Severity::Sev4,
    ];

    /// The serialized name, `"sev1"`..`"sev4"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Sev1 => "sev1",
            Severity::Sev2 => "sev2",
            Severity::Sev3 => "sev3",
            Severity::Sev4 => "sev4",
        }
    }

    /// True for sev1 and sev2, where Goliath does not explore.
    pub fn is_critical(self) -> bool {
        matches!(self, Severity::Sev1 | Severity::Sev2)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown severity string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected sev1, sev2, sev3 or sev4)")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Accepts `sev1`..`sev4` (any case) and the bare digits `1`..`4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let digits = t.strip_prefix("sev").unwrap_or(&t);
        match digits {
            "1" => Ok(Severity::Sev1),
            "2" => Ok(Severity::Sev2),
            "3" => Ok(Severity::Sev3),
            "4" => Ok(Severity::Sev4),
            _ => Err(ParseSeverityError(s.to_string())),
        }
    }
}

/// Everything [`decide`] needs, as the glue stores it (JSON) to replay a decision later.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DecisionInput {
    /// Seeds the exploration draw: same id and same input give the same decision.
    pub work_item_id: String,
    pub service: String,
    pub severity: Severity,
    /// Event time of the incident; evidence decay is measured against it.
    pub at: DateTime<Utc>,
    pub candidates: Vec<CandidateInput>,
    /// Optional context tags known at intake (product, component, region...). Each candidate's
    /// evidence for these tags is supplied in [`CandidateInput::context_skill`].
    #[serde(default)]
    pub context: Vec<String>,
    /// Only candidates on call for the incident are eligible (the service's on-call rule is
    /// `required`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_call_required: bool,
}

/// One person who might own the incident. Stored with every decision, so fields at their
/// defaults (no cap, no open items, not on call, nothing learned yet) are left out.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CandidateInput {
    pub human_id: String,
    pub active: bool,
    /// Services the person covers; empty means any service.
    pub services: Vec<String>,
    /// Cap on open items held; `None` means no hard cap (load still counts against
    /// `ModelParams::default_capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// Open work items currently assigned to this person.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open_items: u32,
    /// This person is among the PagerDuty incident's assignees (on call now).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_call: bool,
    /// What the learner knows about this person for THIS service (any severities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skill: Vec<SkillRecord>,
    /// What the learner knows about this person for the input's context tags (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_skill: Vec<ContextRecord>,
    /// The person's state summed over all services and severities (optional). Evidence from
    /// other services informs the prior for sparse ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<SkillState>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Learned belief for one (person, service, severity).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SkillRecord {
    pub service: String,
    pub severity: Severity,
    pub state: SkillState,
}

/// Learned belief for one (person, context tag).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ContextRecord {
    pub tag: String,
    pub state: SkillState,
}

/// Decayed sufficient statistics of a person's outcomes for one key. Stored as JSONB.
///
/// Counts are real numbers because they decay: every stored quantity is multiplied by
/// `0.5^(elapsed / half_life)` when the state is read or updated at a later event time.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct SkillState {
    /// Good resolutions (resolved by this person, not reopened).
    pub successes: f64,
    /// Hand-offs by this person and reopens of their resolutions.
    pub failures: f64,
    /// Weight of the timed resolutions below.
    pub time_weight: f64,
    /// Sum of ln(seconds to resolve).
    pub log_time_sum: f64,
    /// Sum of squared ln(seconds to resolve).
    pub log_time_sq_sum: f64,
    /// Good resolutions of work that reached the person without Goliath assigning it to them
    /// (routed by people, taken up, kept while on call). Feeds the experience share; work
    /// Goliath assigned is left out so the share never echoes Goliath's own choices.
    pub owned: f64,
    /// Incidents on which the person was on call, Goliath did not assign it to them, and it
    /// reached a good resolution (see [`apply_on_call_outcome`]).
    pub on_call_trials: f64,
    /// Of those, the ones the person resolved themselves (kept the work).
    pub on_call_kept: f64,
    /// Event time up to which the numbers above are decayed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl SkillState {
    /// Multiplier that brings this state's numbers from `updated_at` to `at`.
    pub fn decay_factor(&self, at: DateTime<Utc>, params: &ModelParams) -> f64 {
        match self.updated_at {
            Some(t) if at > t && params.half_life_days > 0.0 => {
                let days = (at - t).num_milliseconds() as f64 / 86_400_000.0;
                (-std::f64::consts::LN_2 * days / params.half_life_days).exp()
            }
            _ => 1.0,
        }
    }

    /// Total decayed evidence (successes + failures).
    pub fn evidence(&self) -> f64 {
        self.successes + self.failures
    }

    /// Adds `other` (decayed to `at`) into `self` (also decayed to `at`). Used to build overall
    /// or service-level states from finer ones.
    pub fn merge(&mut self, other: &SkillState, at: DateTime<Utc>, params: &ModelParams) {
        self.decay_to(at, params);
        let f = other.decay_factor(at, params);
        self.successes += f * other.successes;
        self.failures += f * other.failures;
        self.time_weight += f * other.time_weight;
        self.log_time_sum += f * other.log_time_sum;
        self.log_time_sq_sum += f * other.log_time_sq_sum;
        self.owned += f * other.owned;
        self.on_call_trials += f * other.on_call_trials;
        self.on_call_kept += f * other.on_call_kept;
    }

    fn decay_to(&mut self, at: DateTime<Utc>, params: &ModelParams) {
        let f = self.decay_factor(at, params);
        self.successes *= f;
        self.failures *= f;
        self.time_weight *= f;
        self.log_time_sum *= f;
        self.log_time_sq_sum *= f;
        self.owned *= f;
        self.on_call_trials *= f;
        self.on_call_kept *= f;
        match self.updated_at {
            Some(t) if t >= at => {}
            _ => self.updated_at = Some(at),
        }
    }
}

/// What happened to an assignment.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Resolved by the assignee.
    Resolved {
        seconds_to_resolve: f64,
        /// True when the resolver held the incident because Goliath assigned it to them (auto
        /// assignment acted on a recommendation); false when people routed it, the person took
        /// it, or Goliath only recommended (shadow mode). Only false counts towards `owned`.
        #[serde(default)]
        goliath_assigned: bool,
    },
    /// The assignee handed the incident on to someone else.
    HandedOff,
    /// A resolution by this person was reopened.
    Reopened,
}

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
        } => {
            state.successes += 1.0;
            if !goliath_assigned {
                state.owned += 1.0;
            }
            if seconds_to_resolve.is_finite() && *seconds_to_resolve >= 0.0 {
                let l = seconds_to_resolve.max(params.min_seconds).ln();
                state.time_weight += 1.0;
                state.log_time_sum += l;
                state.log_time_sq_sum += l * l;
            }
        }
        OutcomeKind::HandedOff => state.failures += 1.0,
        OutcomeKind::Reopened => {
            state.successes = (state.successes - 1.0).max(0.0);
            state.owned = state.owned.min(state.successes);
            state.failures += 1.0;
        }
    }
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

/// Tunable constants of the model. Defaults are round numbers chosen for robustness, not fitted
/// to any one data set.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct ModelParams {
    /// Evidence half-life in event-time days.
    pub half_life_days: f64,
    /// Global prior probability of resolving without a hand-off.
    pub prior_success: f64,
    /// Pseudo-count of the global prior inside the service pool.
    pub prior_strength_global: f64,
    /// Pseudo-count of the service pool inside a person's elsewhere (overall) record.
    pub prior_strength_person: f64,
    /// Pseudo-count of the prior (service pool, moved by the person's record elsewhere) against
    /// the person's own evidence for this service.
    pub prior_strength_service: f64,
    /// Weight of the person's evidence at other severities of this service.
    pub other_severity_weight: f64,
    /// Weight of the person's evidence on each context tag.
    pub context_weight: f64,
    /// Global prior for ln(seconds to resolve).
    pub prior_log_seconds: f64,
    /// Pseudo-count of the time prior at each level of pooling.
    pub prior_time_strength: f64,
    /// Upper bound of the empirical-Bayes time shrinkage pseudo-count.
    pub max_time_strength: f64,
    /// Weight of the experience component (log of the person's predictive share of this
    /// service's good resolutions, relative to an even share). 1 would be the full mixture
    /// likelihood; the default 0.5 counts ownership as half evidence, since it predicts who
    /// gets the work rather than how fast it gets resolved.
    pub experience_weight: f64,
    /// Dirichlet pseudo-count spread evenly over the eligible candidates in the experience share.
    pub experience_concentration: f64,
    /// Prior standard deviation of ln(seconds to resolve) for a single incident.
    pub prior_log_sigma: f64,
    /// Resolve times below this are clamped (seconds) before taking logs.
    pub min_seconds: f64,
    /// Slow-down per unit of relative load (open_items / capacity).
    pub load_weight: f64,
    /// Capacity used for the load term when a person has no `max_active`.
    pub default_capacity: f64,
    /// Prior probability that the on-call person keeps and resolves an incident recommended to
    /// someone else (the pooled [`ServiceState`] is shrunk to it).
    pub on_call_prior_keep: f64,
    /// Pseudo-count of `on_call_prior_keep` in the pooled rate, and of the pooled rate in a
    /// service's rate.
    pub on_call_prior_strength: f64,
    /// Pseudo-count of the pooled keep rate against a person's own on-call record.
    pub on_call_person_strength: f64,
    /// Fixed extra score (log units) for being on call, on top of the learned component.
    pub on_call_bonus: f64,
    /// Scale of the Thompson draw on sev3/sev4 (0 = posterior mean, 1 = full posterior).
    pub explore_scale: f64,
    /// Lower-credible-bound width (standard deviations) used on sev1.
    pub sev1_z: f64,
    /// Pessimism (standard deviations) applied before the Thompson draw on sev3/sev4.
    pub explore_z: f64,
    /// Lower-credible-bound width (standard deviations) used on sev2.
    pub sev2_z: f64,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            half_life_days: 60.0,
            prior_success: 0.7,
            prior_strength_global: 2.0,
            prior_strength_person: 2.0,
            prior_strength_service: 2.0,
            other_severity_weight: 0.8,
            context_weight: 0.5,
            prior_log_seconds: (4.0f64 * 3600.0).ln(),
            prior_time_strength: 2.0,
            prior_log_sigma: 1.0,
            max_time_strength: 50.0,
            experience_weight: 0.5,
            experience_concentration: 1.0,
            min_seconds: 60.0,
            load_weight: 2.0,
            default_capacity: 5.0,
            on_call_prior_keep: 0.05,
            on_call_prior_strength: 10.0,
            on_call_person_strength: 2.0,
            on_call_bonus: 0.0,
            explore_scale: 0.5,
            sev1_z: 1.0,
            explore_z: 0.0,
            sev2_z: 0.5,
        }
    }
}

/// Named parts of a candidate's score; they add up to [`ScoredCandidate::score`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ScoreComponents {
    /// ln(posterior mean probability of resolving without a hand-off).
    pub success: f64,
    /// Service log time minus the person's expected log time (positive = faster than typical).
    pub speed: f64,
    /// -ln(1 + load_weight * open_items / capacity).
    pub load: f64,
    /// On-call bonus (0 when not on call).
    pub on_call: f64,
    /// experience_weight * ln((good resolutions + 1) / eligible average of the same).
    pub experience: f64,
    /// Thompson draw minus the mean (sev3/sev4), or the conservative penalty (sev1/sev2).
    pub exploration: f64,
}

impl ScoreComponents {
    fn total(&self) -> f64 {
        self.success + self.speed + self.load + self.on_call + self.experience + self.exploration
    }

    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("success", self.success),
            ("speed", self.speed),
            ("load", self.load),
            ("on_call", self.on_call),
            ("experience", self.experience),
            ("exploration", self.exploration),
        ]
    }
}

/// An eligible candidate with its score breakdown.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScoredCandidate {
    pub human_id: String,
    /// Sum of the components; higher is better. `-score` is the log of the expected time to a
    /// good resolution relative to the service's typical time.
    pub score: f64,
    pub components: ScoreComponents,
    /// Posterior mean probability of resolving without a hand-off.
    pub p_success: f64,
    /// Expected (median) seconds to resolve, before load.
    pub expected_seconds: f64,
    /// Decayed evidence behind the estimate (weighted outcome count).
    pub evidence: f64,
}

/// Why a person could not take the incident.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExclusionReason {
    Inactive,
    NotInService,
    AtCapacity {
        open_items: u32,
        max_active: u32,
    },
    DuplicateCandidate,
    /// The service requires the owner to be on call, and they are not.
    NotOnCall,
}

impl fmt::Display for ExclusionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExclusionReason::Inactive => f.write_str("inactive"),
            ExclusionReason::NotInService => f.write_str("not in service"),
            ExclusionReason::AtCapacity {
                open_items,
                max_active,
            } => write!(
                f,
                "at capacity ({open_items} open, max_active {max_active})"
            ),
            ExclusionReason::DuplicateCandidate => f.write_str("duplicate candidate entry"),
            ExclusionReason::NotOnCall => f.write_str("not on call"),
        }
    }
}

/// An ineligible person and the reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Excluded {
    pub human_id: String,
    pub reason: ExclusionReason,
}

/// The routing decision, reproducible from its [`DecisionInput`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Decision {
    /// Chosen owner; `None` means undecided.
    pub primary: Option<String>,
    /// Up to two next-best candidates.
    pub backups: Vec<String>,
    /// Estimated probability that the primary is the best choice, in [0, 1].
    pub confidence: f64,
    /// Every eligible candidate, best first.
    pub ranking: Vec<ScoredCandidate>,
    /// Every ineligible candidate, with the reason.
    pub excluded: Vec<Excluded>,
    /// Plain-language reason for the choice.
    pub explanation: String,
    pub undecided_reason: Option<String>,
    pub model_version: String,
}

/// Decayed evidence aggregated for one candidate.
#[derive(Default, Clone, Copy)]
struct Evidence {
    ok: f64,
    fail: f64,
    tw: f64,
    ts: f64,
    tss: f64,
    own: f64,
    oc_t: f64,
    oc_k: f64,
}

impl Evidence {
    fn add(&mut self, s: &SkillState, w: f64) {
        self.ok += w * s.successes;
        self.fail += w * s.failures;
        self.tw += w * s.time_weight;
        self.ts += w * s.log_time_sum;
        self.tss += w * s.log_time_sq_sum;
        self.own += w * s.owned;
        self.oc_t += w * s.on_call_trials;
        self.oc_k += w * s.on_call_kept;
    }

    fn add_ev(&mut self, e: &Evidence, w: f64) {
        self.ok += w * e.ok;
        self.fail += w * e.fail;
        self.tw += w * e.tw;
        self.ts += w * e.ts;
        self.tss += w * e.tss;
        self.own += w * e.own;
        self.oc_t += w * e.oc_t;
        self.oc_k += w * e.oc_k;
    }

    fn minus_clamped(&self, e: &Evidence) -> Evidence {
        Evidence {
            ok: (self.ok - e.ok).max(0.0),
            fail: (self.fail - e.fail).max(0.0),
            tw: (self.tw - e.tw).max(0.0),
            ts: if self.tw - e.tw > 0.0 {
                self.ts - e.ts
            } else {
                0.0
            },
            tss: if self.tw - e.tw > 0.0 {
                (self.tss - e.tss).max(0.0)
            } else {
                0.0
            },
            own: (self.own - e.own).max(0.0),
            oc_t: (self.oc_t - e.oc_t).max(0.0),
            oc_k: (self.oc_k - e.oc_k).max(0.0),
        }
    }
}

/// Per-candidate working numbers.
struct Work {
    idx: usize,
    service: Evidence,
    sev: Evidence,
    ctx: Evidence,
    elsewhere: Evidence,
    /// (time weight, log-time sum) of this service's records by severity.
    by_sev: [(f64, f64); 4],
}

/// Removes per-severity log-time offsets from evidence built from records of those severities.
fn remove_offsets(
    ev: &mut Evidence,
    by_sev: &[(f64, f64); 4],
    delta: &[f64; 4],
    only: Option<usize>,
) {
    for (s, (&(tw, ts), &d)) in by_sev.iter().zip(delta).enumerate() {
        if only.is_some_and(|o| o != s) || tw <= 0.0 {
            continue;
        }
        ev.ts -= d * tw;
        ev.tss = (ev.tss - 2.0 * d * ts + d * d * tw).max(0.0);
    }
}

/// Decay factor with a one-entry cache: states written by the same event share a timestamp.
fn cached_decay(
    cache: &mut (Option<DateTime<Utc>>, f64),
    s: &SkillState,
    at: DateTime<Utc>,
    params: &ModelParams,
) -> f64 {
    if cache.0 != s.updated_at {
        *cache = (s.updated_at, s.decay_factor(at, params));
    }
    cache.1
}

/// Shrinks a rate towards `prior` with pseudo-count `m`.
fn shrink_rate(prior: f64, m: f64, ok: f64, fail: f64) -> f64 {
    (m * prior + ok) / (m + ok + fail)
}

/// Shrinks a mean log time towards `prior` with pseudo-count `k`.
fn shrink_mu(prior: f64, k: f64, tw: f64, ts: f64) -> f64 {
    (k * prior + ts) / (k + tw)
}

/// Paule-Mandel estimate of the spread `tau^2` of true means, from `(observed mean, its
/// sampling variance)` points: the value at which the generalized Q statistic (squares about
/// the precision-weighted mean, weights `1 / (tau^2 + v)`) equals its expectation, n - 1. Q falls
/// as `tau^2` grows, so this bisects (in log space) within `[lo, hi]`. Returns `(tau^2, weighted
/// mean)`, or `None` with fewer than three points (no spread to speak of).
fn paule_mandel(points: &[(f64, f64)], lo: f64, hi: f64) -> Option<(f64, f64)> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mean_at = |tau2: f64| {
        let (mut sw, mut swm) = (0.0, 0.0);
        for &(m, v) in points {
            let w = 1.0 / (tau2 + v);
            sw += w;
            swm += w * m;
        }
        swm / sw
    };
    let excess = |tau2: f64| {
        let mean = mean_at(tau2);
        let q: f64 = points
            .iter()
            .map(|&(m, v)| (m - mean).powi(2) / (tau2 + v))
            .sum();
        q - (n - 1.0)
    };
    let (mut a, mut b) = (lo.max(1e-12).ln(), hi.max(lo).max(1e-12).ln());
    let tau2 = if excess(a.exp()) <= 0.0 {
        a.exp()
    } else if excess(b.exp()) >= 0.0 {
        b.exp()
    } else {
        for _ in 0..40 {
            let mid = 0.5 * (a + b);
            if excess(mid.exp()) > 0.0 {
                a = mid;
            } else {
                b = mid;
            }
        }
        (0.5 * (a + b)).exp()
    };
    Some((tau2, mean_at(tau2)))
}

/// Pooled within-person variance of a single log time from (weight, sum, sum of squares)
/// records, one degree of freedom spent per record on its own mean, shrunk to `prior_var` with
/// pseudo-count `k`.
fn within_variance<'a>(recs: impl Iterator<Item = &'a Evidence>, prior_var: f64, k: f64) -> f64 {
    let (mut ss, mut df) = (0.0, 0.0);
    for e in recs {
        if e.tw > 1.0 {
            ss += (e.tss - e.ts * e.ts / e.tw).max(0.0);
            df += e.tw - 1.0;
        }
    }
    (k * prior_var + ss) / (k + df)
}

/// Prior mean log time for each candidate (in `work` order) from their record on other
/// services, weighted by how well such records predict times here *among these candidates*.
///
/// Model: a candidate's mean log time elsewhere `e_i` is `e + b_i` plus sampling noise
/// `sigma_e^2 / n_i`, and their true log time here is `mu_pool + m_i`. The best linear predictor
/// of `m_i` is `cov(b, m) / (tau_e^2 + sigma_e^2 / n_i) * (e_i - e)`: `tau_e^2` is the spread of
/// the true `b_i` (Paule-Mandel), and `cov(b, m)` the mean cross-product of the centred
/// elsewhere and here means over the candidates who have both (their noises are independent,
/// so it is unbiased), kept between 0 and `tau_e * tau_m` (a correlation in [0, 1]). Records
/// elsewhere are centred on the candidates' common mean, so services that are slower or faster
/// overall do not leak in, and where they do not predict times here they get no weight.
/// `None` (everyone's prior is the service pool) with fewer than three candidates who have
/// both: there is no telling yet whether records elsewhere predict anything here.
fn elsewhere_time_priors(
    work: &[Work],
    mu_pool: f64,
    sigma2: f64,
    params: &ModelParams,
) -> Option<Vec<f64>> {
    let k_min = params.prior_time_strength.max(1e-6);
    let k_max = params.max_time_strength.max(k_min);
    let sigma2_e = within_variance(
        work.iter().map(|w| &w.elsewhere),
        params.prior_log_sigma * params.prior_log_sigma,
        params.prior_time_strength,
    );
    let mean = |e: &Evidence| e.ts / e.tw;
    let both: Vec<&Work> = work
        .iter()
        .filter(|w| w.service.tw >= 1.0 && w.elsewhere.tw >= 1.0)
        .collect();
    if both.len() < 3 {
        return None;
    }
    let here: Vec<(f64, f64)> = work
        .iter()
        .filter(|w| w.service.tw >= 1.0)
        .map(|w| (mean(&w.service) - mu_pool, sigma2 / w.service.tw))
        .collect();
    let there: Vec<(f64, f64)> = work
        .iter()
        .filter(|w| w.elsewhere.tw >= 1.0)
        .map(|w| (mean(&w.elsewhere), sigma2_e / w.elsewhere.tw))
        .collect();
    let (tau2_m, _) = paule_mandel(&here, sigma2 / k_max, sigma2 / k_min)?;
    let (tau2_e, e_bar) = paule_mandel(&there, sigma2_e / k_max, sigma2_e / k_min)?;
    // Cross-products weighted by the precision of each pair.
    let pairs: Vec<(f64, f64)> = both
        .iter()
        .map(|w| {
            let v = (tau2_e + sigma2_e / w.elsewhere.tw) * (tau2_m + sigma2 / w.service.tw);
            let xy = (mean(&w.elsewhere) - e_bar) * (mean(&w.service) - mu_pool);
            (1.0 / v.sqrt(), xy)
        })
        .collect();
    let sw: f64 = pairs.iter().map(|p| p.0).sum();
    let c = pairs.iter().map(|p| p.0 * p.1).sum::<f64>() / sw;
    // With few candidates the estimate is mostly noise, and clamping noise at 0 would bias it
    // upwards. Shrink it to 0 first: the empirical-Bayes posterior mean under a normal prior
    // centred on 0 is c * max(0, 1 - se^2 / c^2), with se^2 the sampling variance of c.
    let n = pairs.len() as f64;
    let se2 =
        pairs.iter().map(|p| (p.0 * (p.1 - c)).powi(2)).sum::<f64>() / (sw * sw) * n / (n - 1.0);
    let c = if c * c > se2 {
        c * (1.0 - se2 / (c * c))
    } else {
        0.0
    };
    let cov = c.clamp(0.0, (tau2_e * tau2_m).sqrt());
    Some(
        work.iter()
            .map(|w| {
                if w.elsewhere.tw > 0.0 {
                    let g = cov / (tau2_e + sigma2_e / w.elsewhere.tw);
                    mu_pool + g * (mean(&w.elsewhere) - e_bar)
                } else {
                    mu_pool
                }
            })
            .collect(),
    )
}

/// Scores the eligible candidates and picks an owner. Pure and deterministic.
pub fn decide(input: &DecisionInput, params: &ModelParams) -> Decision {
    let at = input.at;
    let mut excluded = Vec::new();
    let mut work: Vec<Work> = Vec::with_capacity(input.candidates.len());
    let mut pool = Evidence::default();
    let mut pool_by_sev = [(0.0, 0.0); 4];
    // On-call (trials, kept) over every candidate's overall record.
    let mut oc_all = (0.0, 0.0);
    let mut cache: (Option<DateTime<Utc>>, f64) = (None, 1.0);

    // Visit candidates in id order so that floating-point sums do not depend on input order.
    let mut visit: Vec<usize> = (0..input.candidates.len()).collect();
    visit.sort_by(|&a, &b| {
        input.candidates[a]
            .human_id
            .cmp(&input.candidates[b].human_id)
            .then(a.cmp(&b))
    });
    let mut prev_id: Option<&str> = None;
    for idx in visit {
        let c = &input.candidates[idx];
        let duplicate = prev_id == Some(c.human_id.as_str());
        prev_id = Some(c.human_id.as_str());
        if duplicate {
            excluded.push(Excluded {
                human_id: c.human_id.clone(),
                reason: ExclusionReason::DuplicateCandidate,
            });
            continue;
        }
        let mut service = Evidence::default();
        let mut sev = Evidence::default();
        let mut by_sev = [(0.0, 0.0); 4];
        for r in &c.skill {
            if r.service != input.service {
                continue;
            }
            let f = cached_decay(&mut cache, &r.state, at, params);
            service.add(&r.state, f);
            if r.severity == input.severity {
                sev.add(&r.state, f);
            }
            let b = &mut by_sev[r.severity as usize];
            b.0 += f * r.state.time_weight;
            b.1 += f * r.state.log_time_sum;
        }
        pool.add_ev(&service, 1.0);
        for (p, b) in pool_by_sev.iter_mut().zip(&by_sev) {
            p.0 += b.0;
            p.1 += b.1;
        }
        if let Some(o) = &c.overall {
            let f = cached_decay(&mut cache, o, at, params);
            oc_all.0 += f * o.on_call_trials;
            oc_all.1 += f * o.on_call_kept;
        }

        let reason = if !c.active {
            Some(ExclusionReason::Inactive)
        } else if !c.services.is_empty() && !c.services.contains(&input.service) {
            Some(ExclusionReason::NotInService)
        } else if input.on_call_required && !c.on_call {
            Some(ExclusionReason::NotOnCall)
        } else {
            match c.max_active {
                Some(m) if c.open_items >= m => Some(ExclusionReason::AtCapacity {
                    open_items: c.open_items,
                    max_active: m,
                }),
                _ => None,
            }
        };
        if let Some(reason) = reason {
            excluded.push(Excluded {
                human_id: c.human_id.clone(),
                reason,
            });
            continue;
        }

        let mut ctx = Evidence::default();
        if !input.context.is_empty() {
            for r in &c.context_skill {
                if input.context.contains(&r.tag) {
                    ctx.add(&r.state, cached_decay(&mut cache, &r.state, at, params));
                }
            }
        }
        let elsewhere = match &c.overall {
            Some(o) => {
                let mut e = Evidence::default();
                e.add(o, cached_decay(&mut cache, o, at, params));
                e.minus_clamped(&service)
            }
            None => Evidence::default(),
        };
        work.push(Work {
            idx,
            service,
            sev,
            ctx,
            elsewhere,
            by_sev,
        });
    }

    // Severity shifts everyone's times alike (critical incidents get worked faster), so
    // times are compared after removing each severity's offset from the service's mean log
    // time (each offset shrunk to 0 with `prior_time_strength`). A person's time record then
    // does not depend on their mix of severities, and all their severities inform it.
    let delta: [f64; 4] = {
        let mut d = [0.0; 4];
        if pool.tw > 0.0 {
            let mean = pool.ts / pool.tw;
            for (x, &(tw, ts)) in d.iter_mut().zip(&pool_by_sev) {
                *x = (ts - tw * mean) / (tw + params.prior_time_strength);
            }
        }
        d
    };
    let sev_idx = input.severity as usize;
    remove_offsets(&mut pool, &pool_by_sev, &delta, None);
    for w in &mut work {
        remove_offsets(&mut w.service, &w.by_sev, &delta, None);
        remove_offsets(&mut w.sev, &w.by_sev, &delta, Some(sev_idx));
    }

    // Service pool: the empirical-Bayes prior for everyone in this decision.
    let p_pool = shrink_rate(
        params.prior_success,
        params.prior_strength_global,
        pool.ok,
        pool.fail,
    );
    let mu_pool = shrink_mu(
        params.prior_log_seconds,
        params.prior_time_strength,
        pool.tw,
        pool.ts,
    );
    // Noise of a single (offset-removed) log time: the pooled *within-person* variance, each
    // eligible candidate's squares about their own mean, with one degree of freedom spent per
    // candidate on that mean, shrunk to `prior_log_sigma`. Squares about the service mean would
    // also count the between-person spread, overstating the noise and so the shrinkage.
    let sigma2 = within_variance(
        work.iter().map(|w| &w.service),
        params.prior_log_sigma * params.prior_log_sigma,
        params.prior_time_strength,
    );

    let severity = input.severity;
    let seed = hash_str(&input.work_item_id);
    let z = match severity {
        Severity::Sev1 => params.sev1_z,
        Severity::Sev2 => params.sev2_z,
        _ => params.explore_z,
    };
    let w_other = params.other_severity_weight;
    // Exploration only pays where Goliath's own assignments produce the evidence. Scale it by
    // the share of this service's good resolutions that Goliath assigned, counting one assigned
    // pseudo-resolution (full exploration until evidence says otherwise): in shadow mode, or
    // where people route the work, a recommendation teaches nothing.
    let explore = params.explore_scale * ((pool.ok - pool.own).max(0.0) + 1.0) / (pool.ok + 1.0);
    let w_ctx = params.context_weight;

    // First pass: each candidate's weighted evidence and hierarchical priors.
    struct Prep {
        ev: Evidence,
        p_prior: f64,
        mu_prior: f64,
        own: f64,
        own_ctx: f64,
    }
    let mut preps: Vec<Prep> = Vec::with_capacity(work.len());
    let (mut own_total, mut own_ctx_total) = (0.0, 0.0);
    for w in &work {
        // Prior from the person's record elsewhere, shrunk to the service pool.
        let p_prior = shrink_rate(
            p_pool,
            params.prior_strength_person,
            w.elsewhere.ok,
            w.elsewhere.fail,
        );
        // The service pool, until `elsewhere_time_priors` shows records elsewhere predict.
        let mu_prior = mu_pool;
        // Weighted evidence: this severity, other severities at a discount, context tags.
        let mut ev = Evidence::default();
        ev.add_ev(&w.sev, 1.0);
        ev.add_ev(&w.service, w_other);
        ev.add_ev(&w.sev, -w_other);
        ev.add_ev(&w.ctx, w_ctx);
        ev.ok = ev.ok.max(0.0);
        ev.fail = ev.fail.max(0.0);
        ev.tw = ev.tw.max(0.0);
        // Good resolutions in this service (any severity) and on the context tags.
        let own = w.service.own.max(0.0);
        // Context records are kept per tag across services: count the part of them that
        // belongs to this service, in proportion to the person's owned work here (someone who
        // resolves this product for another team is not thereby an owner here).
        let own_anywhere = own + w.elsewhere.own.max(0.0);
        let own_ctx = if own_anywhere > 0.0 {
            w.ctx.own.max(0.0) * own / own_anywhere
        } else {
            0.0
        };
        own_total += own;
        own_ctx_total += own_ctx;
        preps.push(Prep {
            ev,
            p_prior,
            mu_prior,
            own,
            own_ctx,
        });
    }
    // Experience: Dirichlet-multinomial predictive share of the next good resolution of this
    // service among the eligible candidates, with `experience_concentration` spread evenly.
    let n_elig = preps.len().max(1) as f64;
    let conc = params.experience_concentration.max(1e-6);
    // Two levels: the share of the service's resolutions (shrunk to an even share), and on the
    // incident's context tags the share of those resolutions, shrunk to the service share.
    let share_of = |p: &Prep| {
        let svc = (p.own + conc / n_elig) / (own_total + conc);
        (p.own_ctx + conc * svc) / (own_ctx_total + conc)
    };
    // Pooled rate at which on-call people keep work Goliath did not assign them: the prior,
    // moved by every candidate's record anywhere, then by the records for this service.
    let keep_pool = {
        let s = params.on_call_prior_strength.max(1e-6);
        let q0 = params.on_call_prior_keep.clamp(0.0, 0.99);
        let q_all = shrink_rate(q0, s, oc_all.1, (oc_all.0 - oc_all.1).max(0.0));
        shrink_rate(q_all, s, pool.oc_k, (pool.oc_t - pool.oc_k).max(0.0))
    };
    // Empirical-Bayes time shrinkage: k = sigma^2 / tau^2, where tau^2 is the spread of the
    // people's true log times about the prior means they are shrunk towards.
    let k_min = params.prior_time_strength.max(1e-6);
    let k_max = params.max_time_strength.max(k_min);
    // How far a person's times elsewhere predict their times here, estimated across the
    // candidates rather than assumed: see [`elsewhere_time_priors`].
    if let Some(priors) = elsewhere_time_priors(&work, mu_pool, sigma2, params) {
        for (p, mu) in preps.iter_mut().zip(priors) {
            p.mu_prior = mu;
        }
    }
    // Empirical-Bayes time shrinkage: k = sigma^2 / tau^2, where tau^2 is the spread of the
    // people's true log times about the prior means they are shrunk towards (Paule-Mandel:
    // candidate i's mean log time here, less their prior mean, varies with variance
    // tau^2 + sigma^2 / n_i), within the bounds the clamp on k allows.
    let k_time = {
        let timed: Vec<(f64, f64)> = work
            .iter()
            .zip(&preps)
            .filter(|(w, _)| w.service.tw >= 1.0)
            .map(|(w, p)| {
                let e = &w.service;
                (e.ts / e.tw - p.mu_prior, sigma2 / e.tw)
            })
            .collect();
        match paule_mandel(&timed, sigma2 / k_max, sigma2 / k_min) {
            Some((tau2, _)) => (sigma2 / tau2).clamp(k_min, k_max),
            None => params.prior_time_strength,
        }
    };

    let mut scored: Vec<ScoredCandidate> = Vec::with_capacity(work.len());
    // (mean score, variance of the mean score) per candidate, for the confidence.
    let mut stats: Vec<(f64, f64)> = Vec::with_capacity(work.len());
    for (w, prep) in work.iter().zip(&preps) {
        let c = &input.candidates[w.idx];
        let ev = &prep.ev;
        let m = params.prior_strength_service;
        let alpha = (m * prep.p_prior + ev.ok).max(1e-6);
        let beta = (m * (1.0 - prep.p_prior) + ev.fail).max(1e-6);
        let p_mean = alpha / (alpha + beta);
        let logit = (alpha / beta).ln();
        let sd_logit = (1.0 / alpha + 1.0 / beta).sqrt();
        let mu = (k_time * prep.mu_prior + ev.ts) / (k_time + ev.tw);
        let sd_mu = (sigma2 / (k_time + ev.tw)).sqrt();

        let cap = match c.max_active {
            Some(m) if m > 0 => f64::from(m),
            _ => params.default_capacity.max(1.0),
        };
        let mut comp = ScoreComponents {
            success: p_mean.ln(),
            speed: mu_pool - mu,
            load: -(1.0 + params.load_weight * f64::from(c.open_items) / cap).ln(),
            // Mixture: the on-call person resolves with probability `keep` on their own, else
            // the resolver follows the experience share; this is the log of that lift.
            on_call: if c.on_call {
                // The person's own keep rate: service record over their record elsewhere over
                // the pool.
                let sp = params.on_call_person_strength.max(1e-6);
                let e = &w.elsewhere;
                let q = shrink_rate(keep_pool, sp, e.oc_k, (e.oc_t - e.oc_k).max(0.0));
                let s = &w.service;
                let q = shrink_rate(q, sp, s.oc_k, (s.oc_t - s.oc_k).max(0.0)).clamp(0.0, 0.99);
                (q / ((1.0 - q) * share_of(prep).max(1.0 / n_elig))).ln_1p() + params.on_call_bonus
            } else {
                0.0
            },
            experience: params.experience_weight * (share_of(prep) * n_elig).ln(),
            exploration: 0.0,
        };
        let (d_logit, d_mu) = if severity.is_critical() {
            (-z * sd_logit, z * sd_mu)
        } else if explore > 0.0 {
            let mut r = SplitMix64::new(mix64(seed ^ hash_str(&c.human_id).rotate_left(17)));
            let (z1, z2) = r.normal_pair();
            ((explore * z1 - z) * sd_logit, (explore * z2 + z) * sd_mu)
        } else {
            (-z * sd_logit, z * sd_mu)
        };
        // ln sigmoid(x) = -ln(1 + e^-x)
        let ln_p_draw = -(-(logit + d_logit)).exp().ln_1p();
        comp.exploration = (ln_p_draw - comp.success) - d_mu;
        let mean_score = comp.total() - comp.exploration;
        // Delta-method variance of the mean score: d ln p / d logit = 1 - p.
        let var = (1.0 - p_mean).powi(2) * sd_logit * sd_logit + sd_mu * sd_mu;
        stats.push((mean_score, var));
        scored.push(ScoredCandidate {
            human_id: c.human_id.clone(),
            score: comp.total(),
            components: comp,
            p_success: p_mean,
            expected_seconds: (mu + delta[sev_idx]).exp(),
            evidence: ev.ok + ev.fail,
        });
    }

    let mut order: Vec<usize> = (0..scored.len()).collect();
    order.sort_by(|&a, &b| {
        scored[b]
            .score
            .total_cmp(&scored[a].score)
            .then_with(|| scored[a].human_id.cmp(&scored[b].human_id))
    });
    let stats: Vec<(f64, f64)> = order.iter().map(|&i| stats[i]).collect();
    let mut slots: Vec<Option<ScoredCandidate>> = scored.into_iter().map(Some).collect();
    let ranking: Vec<ScoredCandidate> = order
        .iter()
        .map(|&i| slots[i].take().expect("each index once"))
        .collect();

    if ranking.is_empty() {
        let count =
            |f: fn(&ExclusionReason) -> bool| excluded.iter().filter(|e| f(&e.reason)).count();
        let reason = format!(
            "no eligible candidate for service {} ({} candidates: {} inactive, {} not in service, {} at capacity{})",
            input.service,
            input.candidates.len(),
            count(|r| matches!(r, ExclusionReason::Inactive)),
            count(|r| matches!(r, ExclusionReason::NotInService)),
            count(|r| matches!(r, ExclusionReason::AtCapacity { .. })),
            if input.on_call_required {
                format!(
                    ", {} not on call",
                    count(|r| matches!(r, ExclusionReason::NotOnCall))
                )
            } else {
                String::new()
            },
        );
        return Decision {
            primary: None,
            backups: Vec::new(),
            confidence: 0.0,
            ranking,
            excluded,
            explanation: reason.clone(),
            undecided_reason: Some(reason),
            model_version: MODEL_VERSION.to_string(),
        };
    }

    let confidence = {
        let (m0, v0) = stats[0];
        let mut c = 1.0;
        for &(m, v) in stats.iter().skip(1).take(3) {
            let sd = (v0 + v).sqrt().max(1e-9);
            c *= normal_cdf((m0 - m) / sd);
        }
        c.clamp(0.0, 1.0)
    };
    let explanation = explain(&ranking, severity, params);
    Decision {
        primary: Some(ranking[0].human_id.clone()),
        backups: ranking
            .iter()
            .skip(1)
            .take(2)
            .map(|r| r.human_id.clone())
            .collect(),
        confidence,
        ranking,
        excluded,
        explanation,
        undecided_reason: None,
        model_version: MODEL_VERSION.to_string(),
    }
}

fn hours(seconds: f64) -> String {
    if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn explain(ranking: &[ScoredCandidate], severity: Severity, params: &ModelParams) -> String {
    let a = &ranking[0];
    let mode = if severity.is_critical() {
        format!(
            "{severity} is critical, so scores are conservative (lower credible bound, z = {})",
            if severity == Severity::Sev1 {
                params.sev1_z
            } else {
                params.sev2_z
            }
        )
    } else {
        format!("{severity} allows exploration (Thompson draw seeded by the work item)")
    };
    let Some(b) = ranking.get(1) else {
        return format!(
            "{} is the only eligible candidate (resolves without hand-off ~{:.0}%, ~{} to resolve, evidence {:.1}); {mode}.",
            a.human_id,
            a.p_success * 100.0,
            hours(a.expected_seconds),
            a.evidence
        );
    };
    let mut diffs: Vec<(&'static str, f64)> = a
        .components
        .named()
        .iter()
        .zip(b.components.named().iter())
        .map(|(x, y)| (x.0, x.1 - y.1))
        .collect();
    diffs.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(y.0)));
    let describe = |name: &str| -> String {
        match name {
            "success" => format!(
                "success (resolves without hand-off {:.0}% vs {:.0}%, evidence {:.1} vs {:.1})",
                a.p_success * 100.0,
                b.p_success * 100.0,
                a.evidence,
                b.evidence
            ),
            "speed" => format!(
                "speed (typical {} vs {})",
                hours(a.expected_seconds),
                hours(b.expected_seconds)
            ),
            "load" => "load (fewer open items for their capacity)".to_string(),
            "on_call" => format!(
                "on_call ({} is on call for this incident, and on-call people here keep such work)",
                a.human_id
            ),
            "experience" => {
                "experience (resolves more of this work when people route it)".to_string()
            }
            _ => "exploration (posterior draw)".to_string(),
        }
    };
    let helped: Vec<String> = diffs
        .iter()
        .filter(|d| d.1 > 1e-9)
        .take(2)
        .map(|d| format!("{} {:+.2}", describe(d.0), d.1))
        .collect();
    let hurt: Vec<String> = diffs
        .iter()
        .rev()
        .filter(|d| d.1 < -1e-9)
        .take(1)
        .map(|d| format!("{} {:+.2}", d.0, d.1))
        .collect();
    let mut s = format!(
        "{} beat {} by {:.2} (score = log of inverse expected time to a good resolution)",
        a.human_id,
        b.human_id,
        a.score - b.score
    );
    if helped.is_empty() {
        s.push_str("; equal scores, tie broken by id");
    } else {
        s.push_str(&format!("; decided by {}", helped.join(" and ")));
    }
    if let Some(h) = hurt.first() {
        s.push_str(&format!("; despite {h}"));
    }
    s.push_str(&format!("; {mode}."));
    s
}

#[cfg(test)]
mod tests;
