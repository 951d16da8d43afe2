//! Term weights: how much each piece of evidence about *who* resolves counts, learned from this
//! deployment's own outcomes.
//!
//! A candidate's score adds the weighted evidence terms `w_s * success + w_o * on_call +
//! w_e * experience` (success is the log of the person's posterior rate of resolving without a
//! hand-off, experience the log of their ownership share, on_call the on-call lift) to the time
//! terms (the model minimises expected time to a good resolution, `T / p`). The evidence terms
//! read as the log-odds that the person takes and resolves the work if given it:
//! `p_hat = sigmoid(a + w_s * success + w_o * on_call + w_e * experience)`; for a small `p_hat`
//! that is `exp` of the sum, the log-probability the unweighted score adds up. Whether a pick
//! turned out right (its person took and resolved the work) is a Bernoulli observation of
//! `p_hat`, and one online step of logistic regression (AdaGrad, with a pull back to the prior
//! weights) fits the weights to it. Where ownership is what predicts who resolves, the
//! experience weight grows; where skill differences show, success does; and the stated
//! confidence, `p_hat` of the pick, comes to mean how often such picks are right.
//! The weights a decision used are stored with it, so it replays exactly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ScoreComponents;

/// Number of weighted terms.
pub const TERMS: usize = 3;

/// The weighted terms' names, in [`TermWeights::w`] order.
pub const TERM_NAMES: [&str; TERMS] = ["success", "on_call", "experience"];

/// Step size of the online fit (AdaGrad: each weight's step is this over the root of its
/// summed squared gradients).
const STEP: f64 = 0.05;
/// Pull of each observation back towards the prior weights (an L2 prior spread over the
/// observations).
const PRIOR_PULL: f64 = 0.01;
/// Weights stay in this range: a term may come to count for little, never against itself.
/// The floor is above 0 so that a term's values can still be read back from a stored
/// decision's weighted components, and the term can regain weight.
const MIN_WEIGHT: f64 = 0.05;
const MAX_WEIGHT: f64 = 10.0;

/// The weight of each evidence term, the intercept, and the state of their online fit. The
/// default is the prior: every term at weight 1, no intercept, nothing fitted yet.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct TermWeights {
    /// Weights of success, on_call and experience, in [`TERM_NAMES`] order.
    pub w: [f64; TERMS],
    /// The intercept `a`: it moves every candidate alike, so it only sets the confidence.
    pub intercept: f64,
    /// Summed squared gradients of each weight, then of the intercept (AdaGrad).
    pub grad_sq: [f64; TERMS + 1],
    /// Outcomes fitted so far.
    pub fitted: u64,
    /// Of the resolved incidents on which the model's pick and the count's pick differed,
    /// decayed to [`TermWeights::tallied_at`]: how many the model's pick resolved, and how many
    /// the count's (see [`super::counting`]).
    pub model_right: f64,
    pub count_right: f64,
    /// Event time of the last tally.
    pub tallied_at: Option<DateTime<Utc>>,
}

impl Default for TermWeights {
    fn default() -> Self {
        Self {
            w: [1.0; TERMS],
            intercept: 0.0,
            grad_sq: [0.0; TERMS + 1],
            fitted: 0,
            model_right: 0.0,
            count_right: 0.0,
            tallied_at: None,
        }
    }
}

impl TermWeights {
    /// True before any outcome: the prior weights, stored with a decision as nothing.
    pub fn is_prior(&self) -> bool {
        *self == Self::default()
    }

    /// The weights by name, for people to read.
    pub fn named(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, w) in TERM_NAMES.iter().zip(self.w) {
            m.insert((*name).to_string(), serde_json::json!(round4(w)));
        }
        m.insert(
            "intercept".to_string(),
            serde_json::json!(round4(self.intercept)),
        );
        m.insert("fitted".to_string(), serde_json::json!(self.fitted));
        m.insert(
            "model_right".to_string(),
            serde_json::json!(round4(self.model_right)),
        );
        m.insert(
            "count_right".to_string(),
            serde_json::json!(round4(self.count_right)),
        );
        m.insert(
            "follows".to_string(),
            serde_json::json!(if self.trusts_count() {
                "count"
            } else {
                "model"
            }),
        );
        serde_json::Value::Object(m)
    }

    /// `c` with its evidence terms weighted (speed, load and exploration as they are).
    pub(super) fn weigh(&self, c: &ScoreComponents) -> ScoreComponents {
        ScoreComponents {
            success: self.w[0] * c.success,
            on_call: self.w[1] * c.on_call,
            experience: self.w[2] * c.experience,
            ..c.clone()
        }
    }

    /// The probability that a candidate with weighted components `c` takes and resolves the
    /// work if given it.
    pub fn probability(&self, c: &ScoreComponents) -> f64 {
        sigmoid(self.intercept + c.success + c.on_call + c.experience)
    }

    /// The unweighted terms behind weighted components `c`, and a 1 for the intercept.
    fn features(&self, c: &ScoreComponents) -> [f64; TERMS + 1] {
        let x = [c.success, c.on_call, c.experience];
        std::array::from_fn(|k| match k {
            TERMS => 1.0,
            _ if self.w[k] > 1e-9 => x[k] / self.w[k],
            _ => 0.0,
        })
    }

    /// Fits one outcome: a pick with weighted components `picked` (as stored, under the
    /// weights `used`) turned out `right` (its person took and resolved the work) or not.
    /// Returns false, changing nothing, when the components are not finite numbers.
    pub fn fit(&mut self, picked: &ScoreComponents, used: &TermWeights, right: bool) -> bool {
        let x = used.features(picked);
        if x.iter().any(|v| !v.is_finite()) {
            return false;
        }
        let eta = self.intercept
            + x.iter()
                .take(TERMS)
                .zip(self.w)
                .map(|(a, b)| a * b)
                .sum::<f64>();
        // d/d(eta) of the Bernoulli log-likelihood under the logistic link: bounded, so one
        // surprising outcome moves the weights by a step, never by a leap.
        let d = if right { 1.0 } else { 0.0 } - sigmoid(eta);
        let prior = TermWeights::default();
        for (k, xk) in x.iter().enumerate() {
            let (current, centre) = if k == TERMS {
                (self.intercept, prior.intercept)
            } else {
                (self.w[k], prior.w[k])
            };
            let g = d * xk - PRIOR_PULL * (current - centre);
            self.grad_sq[k] += g * g;
            let next = current + STEP * g / (self.grad_sq[k].sqrt() + 1e-9);
            if k == TERMS {
                self.intercept = next;
            } else {
                self.w[k] = next.clamp(MIN_WEIGHT, MAX_WEIGHT);
            }
        }
        self.fitted += 1;
        true
    }

    /// True when, on the incidents where the model and the count disagreed, the count's pick
    /// has lately resolved more of them than the model's, by more than one standard deviation
    /// of that difference were the two equally good (a sign test at z = 1, so a short run of
    /// luck does not flip the picks back and forth): the decision then follows the count.
    pub fn trusts_count(&self) -> bool {
        self.count_right - self.model_right > (self.count_right + self.model_right).sqrt()
    }

    /// Tallies one resolved incident: the model picked `model`, the count `count`, and
    /// `resolver` resolved it (None: nobody on the roster). Only a disagreement with a known
    /// resolver tells the two apart; earlier tallies fade with the evidence half-life, by event
    /// time `at`. Returns whether anything was tallied.
    pub fn tally(
        &mut self,
        model: Option<&str>,
        count: Option<&str>,
        resolver: Option<&str>,
        at: DateTime<Utc>,
        half_life_days: f64,
    ) -> bool {
        let (Some(model), Some(count), Some(resolver)) = (model, count, resolver) else {
            return false;
        };
        if model == count {
            return false;
        }
        let f = super::types::half_life_decay(self.tallied_at, at, half_life_days);
        self.model_right *= f;
        self.count_right *= f;
        self.tallied_at = Some(self.tallied_at.map_or(at, |t| t.max(at)));
        self.model_right += f64::from(u8::from(resolver == model));
        self.count_right += f64::from(u8::from(resolver == count));
        true
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::rng::SplitMix64;

    /// Weighted components for raw terms under `w`.
    fn picked(w: &TermWeights, success: f64, on_call: f64, experience: f64) -> ScoreComponents {
        w.weigh(&ScoreComponents {
            success,
            on_call,
            experience,
            ..ScoreComponents::default()
        })
    }

    /// Fits `n` picks whose rightness follows `truth` (a probability of the raw success and
    /// experience terms) and returns the weights.
    fn fit_world(n: usize, truth: impl Fn(f64, f64) -> f64) -> TermWeights {
        let mut w = TermWeights::default();
        let mut rng = SplitMix64::new(7);
        for _ in 0..n {
            let success = -0.05 - 0.6 * rng.next_f64();
            let experience = -2.5 * rng.next_f64();
            let right = rng.next_f64() < truth(success, experience);
            let used = w.clone();
            let c = picked(&used, success, 0.0, experience);
            assert!(w.fit(&c, &used, right));
        }
        w
    }

    #[test]
    fn the_term_that_predicts_right_picks_gains_weight_over_the_one_that_does_not() {
        // Right as often as the pick's ownership share says; the success rate says nothing.
        let owners = fit_world(4000, |_, e| sigmoid(0.5 + 1.6 * e));
        // Right as often as the success record says; ownership says nothing.
        let skill = fit_world(4000, |s, _| sigmoid(1.0 + 3.0 * s));
        assert!(owners.w[2] > 1.15 && owners.w[0] < 0.8, "{owners:?}");
        assert!(skill.w[0] > 0.9 && skill.w[2] < 0.5, "{skill:?}");
        assert!(owners.w[2] > skill.w[2] + 0.8, "{owners:?} {skill:?}");
        assert!(skill.w[0] > owners.w[0] + 0.2, "{owners:?} {skill:?}");
        // No on-call evidence in either: no change.
        assert_eq!((owners.w[1], skill.w[1]), (1.0, 1.0));
        assert_eq!(owners.fitted, 4000);
    }

    #[test]
    fn the_fitted_probability_comes_to_match_how_often_picks_are_right() {
        // Every pick looks alike and a quarter are right: p_hat goes to about 0.25.
        let mut w = TermWeights::default();
        let mut rng = SplitMix64::new(3);
        let c0 = picked(&w, -0.2, 0.0, -0.3);
        for _ in 0..3000 {
            let used = w.clone();
            let c = picked(&used, -0.2, 0.0, -0.3);
            w.fit(&c, &used, rng.next_f64() < 0.25);
        }
        let before = TermWeights::default().probability(&c0);
        let after = w.probability(&picked(&w, -0.2, 0.0, -0.3));
        assert!((before - 0.25).abs() > 0.1, "{before}");
        assert!((after - 0.25).abs() < 0.05, "{after}");
    }

    #[test]
    fn the_count_is_followed_once_it_wins_more_disagreements_and_left_when_it_loses_them() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let day = |d: i64| t0 + chrono::Duration::days(d);
        let mut w = TermWeights::default();
        assert!(!w.trusts_count());
        // Agreement, or an unknown resolver, tells nothing.
        assert!(!w.tally(Some("a"), Some("a"), Some("a"), day(0), 60.0));
        assert!(!w.tally(Some("a"), Some("b"), None, day(0), 60.0));
        assert!(w.tally(Some("a"), Some("b"), Some("b"), day(0), 60.0));
        assert!(!w.trusts_count(), "one win is luck as easily as skill");
        assert!(w.tally(Some("a"), Some("b"), Some("b"), day(0), 60.0));
        assert!(w.trusts_count(), "{w:?}");
        assert!(w.tally(Some("a"), Some("b"), Some("a"), day(1), 60.0));
        assert!(
            !w.trusts_count(),
            "2 to 1 is within luck: the model keeps the picks"
        );
        // Sixty days on, the old tallies count half.
        assert!(w.tally(Some("a"), Some("b"), Some("a"), day(61), 60.0));
        assert!((w.model_right - 1.5).abs() < 1e-9, "{w:?}");
        let count = 2.0 * 0.5f64.powf(61.0 / 60.0);
        assert!((w.count_right - count).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn terms_that_are_not_numbers_teach_nothing() {
        let mut w = TermWeights::default();
        let used = w.clone();
        let c = picked(&used, f64::NAN, 0.0, -1.0);
        assert!(!w.fit(&c, &used, true));
        assert!(w.is_prior());
    }

    #[test]
    fn weights_stay_positive_and_bounded() {
        let mut w = TermWeights::default();
        for _ in 0..5000 {
            let used = w.clone();
            // Strong experience is always wrong: its weight is pushed down, to the floor.
            let c = picked(&used, -0.1, 0.0, -0.01);
            w.fit(&c, &used, false);
            let c = picked(&used, -0.1, 0.0, -3.0);
            w.fit(&c, &used, true);
        }
        assert!(
            w.w.iter().all(|&x| (MIN_WEIGHT..=MAX_WEIGHT).contains(&x)),
            "{w:?}"
        );
    }
}
