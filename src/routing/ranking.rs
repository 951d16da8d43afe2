//! Ranking: the order of the eligible candidates, and how sure Goliath is of the first.

use super::scoring::Scored;

/// Orders the scored candidates best first: highest score first, equal scores broken by
/// person id, so the order never depends on the input's order.
pub(super) fn rank(mut scored: Vec<Scored>) -> Vec<Scored> {
    scored.sort_by(|a, b| {
        b.candidate
            .score
            .total_cmp(&a.candidate.score)
            .then_with(|| a.candidate.human_id.cmp(&b.candidate.human_id))
    });
    scored
}

/// The probability that the first of `ranked` is right: that its person takes and resolves
/// the work if given it (`None` when nobody is eligible). It comes from the evidence terms of
/// their mean score under the fitted term weights ([`super::TermWeights::probability`]), so it
/// means how often such picks turn out right; an exploration pick states the probability of
/// the person it picked, not of the best mean score.
pub(super) fn confidence(ranked: &[Scored]) -> Option<f64> {
    ranked.first().map(|s| s.p_right.clamp(0.0, 1.0))
}
