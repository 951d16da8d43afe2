//! The model's public types: what [`decide`](super::decide) reads (the input, each candidate
//! and their learned state, the parameters) and what it returns (the decision, its ranking
//! and exclusions).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::weights::TermWeights;

/// Version tag stored with every decision.
/// 3: context-tag ownership counts only the part of a person's owned work in the service.
/// 4: with several context tags, each tag's ownership share is evidence apart (its lift over
/// the service share), so a tag that says nothing about ownership does not dilute another.
/// 5: ownership is counted when a person takes work over (not when they resolve it, which can
/// be weeks later), and withdrawn when they pass it on.
/// 6: only a resolver who had the work from the start is timed (a hold taken over mid-incident
/// times only its end); a usual load includes one Poisson standard deviation above its mean; a
/// recommendation only (shadow mode) is never explored.
/// 7: a context tag's share here uses the part of each person's record on this service's
/// incidents, where kept, shrunk to the estimate from their record across services.
/// 8: the evidence terms (success, on_call, experience) carry weights fitted online to whether
/// each pick turned out right ([`TermWeights`]), stored with the decision; experience is
/// `ln share` (not relative to an even share), so the weighted terms form a log-probability
/// that the pick is right, which is the confidence; take-overs count against exploring even
/// before anything is resolved.
pub const MODEL_VERSION: &str = "goliath-routing/9";

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

/// Everything [`decide`](super::decide) needs, as the glue stores it (JSON) to replay a decision later.
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
    /// Goliath only recommends (shadow mode): its pick is never acted on and teaches nothing,
    /// so nothing is explored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recommend_only: bool,
    /// How much each term of the score counts, as learned so far ([`TermWeights::fit`]);
    /// stored with the decision so it replays. Left out while they are the prior weights.
    #[serde(default, skip_serializing_if = "TermWeights::is_prior")]
    pub weights: TermWeights,
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
    /// `None`: the person's record on the tag across every service. `Some(service)`: the part
    /// of it on that service's incidents (only the incident's own service counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
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
    /// Work the person owned: good resolutions, each counted once, when they took the work
    /// over or, if they had it from the start, when they resolved it (Goliath's own right
    /// picks included, as `assigned` below). Feeds the experience share.
    pub owned: f64,
    /// Incidents on which the person was on call, Goliath did not assign it to them, and it
    /// reached a good resolution (see [`apply_on_call_outcome`](super::apply_on_call_outcome)).
    pub on_call_trials: f64,
    /// Of those, the ones the person resolved themselves (kept the work).
    pub on_call_kept: f64,
    /// Take-overs with a known load ([`OutcomeKind::TookOver`]), and the sum of the open items
    /// the person already held at each: the load at which they still take work on.
    pub take_ons: f64,
    pub take_on_load_sum: f64,
    /// Of `owned`, the good resolutions of work Goliath assigned to the person: evidence its
    /// own picks produced, which is what exploring adds (the rest people showed).
    pub assigned: f64,
    /// Event time up to which the numbers above are decayed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Multiplier that brings numbers decayed to `from` on to `at`: `0.5^(elapsed / half_life)`
/// in event time, 1 when `at` is not later or nothing decays.
pub(crate) fn half_life_decay(
    from: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
    half_life_days: f64,
) -> f64 {
    match from {
        Some(t) if at > t && half_life_days > 0.0 => {
            let days = (at - t).num_milliseconds() as f64 / 86_400_000.0;
            (-std::f64::consts::LN_2 * days / half_life_days).exp()
        }
        _ => 1.0,
    }
}

impl SkillState {
    /// Multiplier that brings this state's numbers from `updated_at` to `at`.
    pub fn decay_factor(&self, at: DateTime<Utc>, params: &ModelParams) -> f64 {
        half_life_decay(self.updated_at, at, params.half_life_days)
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
        self.take_ons += f * other.take_ons;
        self.take_on_load_sum += f * other.take_on_load_sum;
        self.assigned += f * other.assigned;
    }

    /// Decays every number to `at` and moves `updated_at` forward to it (never back).
    pub(super) fn decay_to(&mut self, at: DateTime<Utc>, params: &ModelParams) {
        let f = self.decay_factor(at, params);
        self.successes *= f;
        self.failures *= f;
        self.time_weight *= f;
        self.log_time_sum *= f;
        self.log_time_sq_sum *= f;
        self.owned *= f;
        self.on_call_trials *= f;
        self.on_call_kept *= f;
        self.take_ons *= f;
        self.take_on_load_sum *= f;
        self.assigned *= f;
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
        /// it, or Goliath only recommended (shadow mode). True also counts towards `assigned`.
        #[serde(default)]
        goliath_assigned: bool,
        /// True when the resolver's ownership was already counted as they took the work over
        /// ([`OutcomeKind::TookOver`]), so the resolve does not count it again.
        #[serde(default)]
        took_over: bool,
    },
    /// The assignee handed the incident on to someone else. `taken_over_at` is when they had
    /// taken it over themselves, if they had: then it is not a failure of theirs (people were
    /// routing it) and the ownership counted at the take-over is withdrawn; else (Goliath or
    /// the intake gave it to them) it is a failure.
    HandedOff {
        #[serde(default)]
        taken_over_at: Option<DateTime<Utc>>,
    },
    /// The assignee did not act in time and it went on without them (an escalation): a
    /// failure however they got it, and any ownership counted at a take-over is withdrawn.
    Missed {
        #[serde(default)]
        taken_over_at: Option<DateTime<Utc>>,
    },
    /// The person took the incident over from someone else (a person handed it to them, or
    /// they took it): counted as owned work at once, because who takes a kind of work is
    /// known long before who resolves it. `holding` is how many open items they already held,
    /// when known: the load at which they still take work on.
    TookOver {
        #[serde(default)]
        holding: Option<u32>,
    },
    /// A resolution by this person was reopened.
    Reopened,
}

impl OutcomeKind {
    /// A hand-off by someone who held the work because Goliath (or the intake) gave it to them.
    pub const HANDED_OFF: OutcomeKind = OutcomeKind::HandedOff {
        taken_over_at: None,
    };
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
    /// Read under its earlier name too, so parameter sets stored before the rename replay.
    #[serde(alias = "prior_strength_person")]
    pub prior_strength_human: f64,
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
    /// Resolve times below this are clamped (seconds) before taking logs; the learner takes a
    /// person who held an item for less than this before resolving it as no time evidence.
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
    #[serde(alias = "on_call_person_strength")]
    pub on_call_human_strength: f64,
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
            prior_strength_human: 2.0,
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
            on_call_human_strength: 2.0,
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
    /// The score: the sum of the components, in declaration order.
    pub(super) fn total(&self) -> f64 {
        self.success + self.speed + self.load + self.on_call + self.experience + self.exploration
    }

    /// The components with their names, in declaration order (for the explanation).
    pub(super) fn named(&self) -> [(&'static str, f64); 6] {
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
    /// The person's decayed count of owned work of this kind, as a lookup by count would key
    /// it (see [`crate::routing::ownership_counts`]): the count expert ranks by it.
    #[serde(default)]
    pub count: f64,
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
