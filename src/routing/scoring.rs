//! Scoring: each eligible candidate's posterior success rate and log time, and the named
//! components of their score (success, speed, load, on_call, experience, exploration).

use super::counting;
use super::evidence::{self, Evidence, Work};
use super::exploration::Exploration;
use super::priors::{shrink_rate, Priors};
use super::{CandidateInput, DecisionInput, ModelParams, ScoreComponents, ScoredCandidate};

/// A candidate's posterior: success (Beta, and its log-odds under a normal approximation) and
/// mean log time (normal).
pub(super) struct Posterior {
    /// Posterior mean probability of resolving without a hand-off.
    pub(super) p_mean: f64,
    pub(super) logit: f64,
    pub(super) sd_logit: f64,
    /// Posterior mean log time (severity offsets removed).
    pub(super) mu: f64,
    pub(super) sd_mu: f64,
}

/// Scores every eligible candidate, in [`evidence::Gathered::work`] order.
///
/// `offset` is the incident severity's log-time offset, added back for the expected time.
/// Each candidate's own evidence ([`evidence::weighted`]) updates their priors to posteriors;
/// the components follow from those, the candidate's load and on-call status, and their
/// experience share. The evidence terms (success, on_call, experience) take the input's term
/// weights; the exploration draw moves the success term, so it takes its weight too.
pub(super) fn score(
    input: &DecisionInput,
    work: &[Work],
    priors: &Priors,
    offset: f64,
    explore: &Exploration,
    params: &ModelParams,
) -> Vec<ScoredCandidate> {
    let shares = experience_shares(work, priors.take_over_rate, params);
    let counts = counting::ownership_counts(work);
    let n_elig = work.len().max(1) as f64;
    let w = &input.weights.w;
    work.iter()
        .enumerate()
        .map(|(i, wk)| {
            let c = &input.candidates[wk.idx];
            let ev = evidence::weighted(wk, params);
            let post = posterior(&ev, priors.p_prior[i], priors.mu_prior[i], priors, params);
            let raw = components(c, wk, &post, shares[i], n_elig, priors, params);
            let mut comp = input.weights.weigh(&raw);
            // The draw moves the success and speed terms, so it takes their weights.
            let (d_success, d_speed) = explore.component(&c.human_id, &post, raw.success);
            comp.exploration = w[0] * d_success + d_speed;
            ScoredCandidate {
                human_id: c.human_id.clone(),
                score: comp.total(),
                components: comp,
                p_success: post.p_mean,
                expected_seconds: (post.mu + offset).exp(),
                evidence: ev.ok + ev.fail,
                count: counts[i],
            }
        })
        .collect()
}

/// The posterior from a candidate's weighted evidence and priors: Beta-Bernoulli success with
/// `prior_strength_service` pseudo-counts of the prior rate, and a log time shrunk to the prior
/// mean with the empirical-Bayes strength `k_time`.
fn posterior(
    ev: &Evidence,
    p_prior: f64,
    mu_prior: f64,
    priors: &Priors,
    params: &ModelParams,
) -> Posterior {
    let (k_time, sigma2) = (priors.k_time, priors.sigma2);
    let m = params.prior_strength_service;
    let alpha = (m * p_prior + ev.ok).max(1e-6);
    let beta = (m * (1.0 - p_prior) + ev.fail).max(1e-6);
    Posterior {
        p_mean: alpha / (alpha + beta),
        logit: (alpha / beta).ln(),
        sd_logit: (1.0 / alpha + 1.0 / beta).sqrt(),
        mu: (k_time * mu_prior + ev.ts) / (k_time + ev.tw),
        sd_mu: (sigma2 / (k_time + ev.tw)).sqrt(),
    }
}

/// The components of a candidate's mean score (exploration is left at 0 and added after).
fn components(
    c: &CandidateInput,
    w: &Work,
    post: &Posterior,
    share: f64,
    n_elig: f64,
    priors: &Priors,
    params: &ModelParams,
) -> ScoreComponents {
    let (usual, cap) = capacity(c, params);
    let over = (f64::from(c.open_items) - usual).max(0.0);
    ScoreComponents {
        success: post.p_mean.ln(),
        speed: priors.mu_pool - post.mu,
        load: -(1.0 + params.load_weight * over / cap).ln(),
        on_call: if c.on_call {
            on_call_lift(w, share, n_elig, priors.keep_pool, params)
        } else {
            0.0
        },
        experience: params.experience_weight * share.ln(),
        exploration: 0.0,
    }
}

/// A person's usual load and capacity. With a `max_active`, no usual load (every open item
/// counts) and that cap. Without, the usual load is the one at which they still take work on
/// (the mean `m` of what they already held at their take-overs, plus `sqrt(m)`), and the cap
/// `default_capacity`:
/// someone who routinely carries many long-running items is not overloaded by carrying them,
/// only by carrying more.
fn capacity(c: &CandidateInput, params: &ModelParams) -> (f64, f64) {
    if let Some(m) = c.max_active.filter(|&m| m > 0) {
        return (0.0, f64::from(m));
    }
    let usual = c
        .overall
        .as_ref()
        .filter(|o| o.take_ons > 0.0)
        .map_or(0.0, |o| {
            // Loads are counts: up to one (Poisson) standard deviation above the mean is
            // still the person's normal range.
            let m = o.take_on_load_sum / o.take_ons;
            m + m.sqrt()
        });
    (usual, params.default_capacity.max(1.0))
}

/// The on-call component of the person PagerDuty paged. Mixture: the on-call person resolves
/// with probability `keep` on their own, else the resolver follows the experience share; this
/// is the log of that lift. The person's own keep rate is their service record over their
/// record elsewhere over the pool; the share is floored at an even share's `1 / n_elig`.
fn on_call_lift(w: &Work, share: f64, n_elig: f64, keep_pool: f64, params: &ModelParams) -> f64 {
    let sp = params.on_call_human_strength.max(1e-6);
    let e = &w.elsewhere;
    let q = shrink_rate(keep_pool, sp, e.oc_k, (e.oc_t - e.oc_k).max(0.0));
    let s = &w.service;
    let q = shrink_rate(q, sp, s.oc_k, (s.oc_t - s.oc_k).max(0.0)).clamp(0.0, 0.99);
    (q / ((1.0 - q) * share.max(1.0 / n_elig))).ln_1p() + params.on_call_bonus
}

/// Each eligible candidate's experience share, in `work` order: the Dirichlet-multinomial
/// posterior mean of "who resolves this kind of work" given each candidate's owned work, with
/// `experience_concentration` spread evenly.
///
/// Two levels: the share of the service's resolutions (shrunk to an even share), and on each of
/// the incident's context tags the share of those resolutions, shrunk to the service share.
/// Context records are kept per tag across services: only the part of them that belongs to
/// this service counts, in proportion to the person's owned work here (someone who resolves
/// this product for another team is not thereby an owner here).
///
/// With several tags, each tag's share is taken as evidence apart: the service share times each
/// tag's lift over it (share on the tag / service share), renormalised. A tag that says nothing
/// about who owns the work (one every incident carries, or one that repeats the service) has a
/// lift near 1 and leaves the shares as they were, instead of diluting an informative tag as a
/// sum over tags would.
fn experience_shares(work: &[Work], take_over_rate: f64, params: &ModelParams) -> Vec<f64> {
    let n_tags = work.first().map_or(0, |w| w.ctx_own.len());
    let n_elig = work.len().max(1) as f64;
    let conc = params.experience_concentration.max(1e-6);
    // Owned work, Goliath's own right picks counted at the take-over rate.
    let discount = 1.0 - take_over_rate.clamp(0.0, 1.0);
    let owned = |own: f64, assigned: f64| (own - discount * assigned.max(0.0)).max(0.0);
    // Good resolutions in this service (any severity), and the part of each tag's that belongs
    // here.
    let own: Vec<f64> = work
        .iter()
        .map(|w| owned(w.service.own, w.service.assigned))
        .collect();
    let here = |w: &Work, own: f64, tag_own: f64| {
        let own_anywhere = own + owned(w.elsewhere.own, w.elsewhere.assigned);
        if own_anywhere > 0.0 {
            tag_own.max(0.0) * own / own_anywhere
        } else {
            0.0
        }
    };
    let own_total: f64 = own.iter().sum();
    let svc: Vec<f64> = own
        .iter()
        .map(|&o| (o + conc / n_elig) / (own_total + conc))
        .collect();
    // The share on tag `t`: the estimated part here of each person's record on the tag,
    // shrunk to the service share; then, where the glue keeps the part of the record on this
    // service's incidents, that exact part shrunk to the estimate. Across services the record
    // carries knowledge of the tag from elsewhere; the part here says who owns it here (a tag
    // confined to one service, such as its escalation policy, would otherwise count against
    // everyone who also works elsewhere).
    let tag_share = |t: usize| -> Vec<f64> {
        let ctx: Vec<f64> = work
            .iter()
            .zip(&own)
            .map(|(w, &o)| {
                let tag_own = owned(
                    w.ctx_own.get(t).copied().unwrap_or(0.0),
                    w.ctx_assigned.get(t).copied().unwrap_or(0.0),
                );
                here(w, o, tag_own)
            })
            .collect();
        let ctx_total: f64 = ctx.iter().sum();
        let estimate: Vec<f64> = ctx
            .iter()
            .zip(&svc)
            .map(|(&c, &s)| (c + conc * s) / (ctx_total + conc))
            .collect();
        let exact: Vec<f64> = work
            .iter()
            .map(|w| {
                owned(
                    w.ctx_own_here.get(t).copied().unwrap_or(0.0),
                    w.ctx_assigned_here.get(t).copied().unwrap_or(0.0),
                )
            })
            .collect();
        let exact_total: f64 = exact.iter().sum();
        if exact_total <= 0.0 {
            return estimate;
        }
        exact
            .iter()
            .zip(&estimate)
            .map(|(&c, &s)| (c + conc * s) / (exact_total + conc))
            .collect()
    };
    if n_tags <= 1 {
        // One tag (or none: then the shrunk share is the service share).
        return tag_share(0);
    }
    let mut log_share: Vec<f64> = svc.iter().map(|s| s.ln()).collect();
    for t in 0..n_tags {
        let share = tag_share(t);
        for ((l, &c), &s) in log_share.iter_mut().zip(&share).zip(&svc) {
            *l += c.ln() - s.ln();
        }
    }
    let top = log_share.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = log_share.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| w / total).collect()
}
