//! Priors: what each candidate's own evidence is shrunk towards. The service pool (itself
//! shrunk to the global prior), moved by the person's record on other services; for times, the
//! pooled noise of a single time and an empirical-Bayes shrinkage strength.

use super::evidence::{Evidence, Gathered, Work};
use super::ModelParams;

/// The priors of one decision.
pub(super) struct Priors {
    /// The service pool's mean log time (severity offsets removed): the typical time `speed`
    /// is measured against.
    pub(super) mu_pool: f64,
    /// Pooled within-person variance of a single (offset-removed) log time.
    pub(super) sigma2: f64,
    /// Pooled rate at which on-call people keep work Goliath did not assign them.
    pub(super) keep_pool: f64,
    /// Empirical-Bayes pseudo-count of the time prior against a person's own times.
    pub(super) k_time: f64,
    /// Each eligible candidate's prior success rate, in [`Gathered::work`] order.
    pub(super) p_prior: Vec<f64>,
    /// Each eligible candidate's prior mean log time, in [`Gathered::work`] order.
    pub(super) mu_prior: Vec<f64>,
    /// How far Goliath's own right picks count as ownership: the rate at which people took
    /// over the work picks handed on (see [`take_over_rate`]).
    pub(super) take_over_rate: f64,
}

/// Estimates the priors from the gathered evidence (after the severity offsets are removed).
///
/// The service pool is the empirical-Bayes prior for everyone in this decision. A candidate's
/// prior success rate is their record elsewhere shrunk to it; their prior mean log time is the
/// pool's, moved by their times elsewhere only as far as such times are shown to predict times
/// here ([`elsewhere_time_priors`]).
pub(super) fn estimate(g: &Gathered, params: &ModelParams) -> Priors {
    let pool = &g.pool;
    let work = &g.work;
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
    // Prior from the person's record elsewhere, shrunk to the service pool.
    let p_prior = work
        .iter()
        .map(|w| {
            shrink_rate(
                p_pool,
                params.prior_strength_human,
                w.elsewhere.ok,
                w.elsewhere.fail,
            )
        })
        .collect();
    // The service pool, until `elsewhere_time_priors` shows records elsewhere predict: how far
    // a person's times elsewhere predict their times here is estimated across the candidates
    // rather than assumed.
    let mu_prior = elsewhere_time_priors(work, mu_pool, sigma2, params)
        .unwrap_or_else(|| vec![mu_pool; work.len()]);
    let k_time = time_strength(work, &mu_prior, sigma2, params);
    Priors {
        take_over_rate: take_over_rate(pool),
        mu_pool,
        sigma2,
        keep_pool: keep_pool(g, params),
        k_time,
        p_prior,
        mu_prior,
    }
}

/// How far a right pick of Goliath's own counts as ownership in this service: the rate at
/// which people took over the work that was handed on (ownership people showed, over the
/// service's hand-offs, with one pseudo hand-off nobody took over; at most 1).
///
/// A pick that resolves the work shows that people let it stand, which says who owns it only
/// where people would have moved it otherwise: where a wrong pick's work is taken over by its
/// owner, a right pick counts as fully as a take-over (a lookup that counts who resolves the
/// work counts both). Where nobody takes work over (Goliath routes every attempt), it counts
/// for nothing, so the share cannot lock in Goliath's own past picks.
fn take_over_rate(pool: &Evidence) -> f64 {
    let shown = (pool.own - pool.assigned).max(0.0);
    (shown / (pool.fail.max(0.0) + 1.0)).min(1.0)
}

/// Pooled rate at which on-call people keep work Goliath did not assign them: the prior,
/// moved by every candidate's record anywhere, then by the records for this service.
fn keep_pool(g: &Gathered, params: &ModelParams) -> f64 {
    let (oc_all, pool) = (g.oc_all, &g.pool);
    let s = params.on_call_prior_strength.max(1e-6);
    let q0 = params.on_call_prior_keep.clamp(0.0, 0.99);
    let q_all = shrink_rate(q0, s, oc_all.1, (oc_all.0 - oc_all.1).max(0.0));
    shrink_rate(q_all, s, pool.oc_k, (pool.oc_t - pool.oc_k).max(0.0))
}

/// Empirical-Bayes time shrinkage: k = sigma^2 / tau^2, where tau^2 is the spread of the
/// people's true log times about the prior means they are shrunk towards (Paule-Mandel:
/// candidate i's mean log time here, less their prior mean, varies with variance
/// tau^2 + sigma^2 / n_i), within the bounds the clamp on k allows
/// (`prior_time_strength`..`max_time_strength`). With fewer than three timed candidates, k is
/// `prior_time_strength`.
fn time_strength(work: &[Work], mu_prior: &[f64], sigma2: f64, params: &ModelParams) -> f64 {
    let k_min = params.prior_time_strength.max(1e-6);
    let k_max = params.max_time_strength.max(k_min);
    let timed: Vec<(f64, f64)> = work
        .iter()
        .zip(mu_prior)
        .filter(|(w, _)| w.service.tw >= 1.0)
        .map(|(w, &mu_prior)| {
            let e = &w.service;
            (e.ts / e.tw - mu_prior, sigma2 / e.tw)
        })
        .collect();
    match paule_mandel(&timed, sigma2 / k_max, sigma2 / k_min) {
        Some((tau2, _)) => (sigma2 / tau2).clamp(k_min, k_max),
        None => params.prior_time_strength,
    }
}

/// Shrinks a rate towards `prior` with pseudo-count `m`.
pub(super) fn shrink_rate(prior: f64, m: f64, ok: f64, fail: f64) -> f64 {
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
pub(super) fn paule_mandel(points: &[(f64, f64)], lo: f64, hi: f64) -> Option<(f64, f64)> {
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
