//! Ranking: the order of the eligible candidates, and how sure Goliath is of the first.

use super::{ScoredCandidate, TermWeights};

/// Orders the scored candidates best first: highest score first, equal scores broken by
/// person id, so the order never depends on the input's order.
pub(super) fn rank(mut scored: Vec<ScoredCandidate>) -> Vec<ScoredCandidate> {
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.human_id.cmp(&b.human_id))
    });
    scored
}

/// The probability that the first of `ranked` is right: that its person takes and resolves
/// the work if given it (`None` when nobody is eligible). It comes from the evidence terms of
/// their mean score under the term weights the decision used ([`TermWeights::probability`]),
/// so it means how often such picks turn out right; an exploration pick states the probability
/// of the person it picked, not of the best mean score.
pub(super) fn confidence(ranked: &[ScoredCandidate], weights: &TermWeights) -> Option<f64> {
    ranked
        .first()
        .map(|c| weights.probability(&c.components).clamp(0.0, 1.0))
}
