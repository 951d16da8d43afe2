//! Ranking: the order of the eligible candidates, and how sure Goliath is of the first.

use super::rng::normal_cdf;
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

/// The estimated probability that the first of `ranked` really is the best choice (`None`
/// when nobody is eligible).
///
/// The product, over the next (up to 3) candidates, of `P(score_first > score_other)` under a
/// normal approximation of both posterior mean scores. It is near 1 when the first is clearly
/// and reliably ahead, about 0.5 or below when the choice was a coin flip or an exploration
/// pick. A lone eligible candidate gets 1.
pub(super) fn confidence(ranked: &[Scored]) -> Option<f64> {
    let (first, rest) = ranked.split_first()?;
    let (m0, v0) = (first.mean, first.var);
    let mut c = 1.0;
    for s in rest.iter().take(3) {
        let sd = (v0 + s.var).sqrt().max(1e-9);
        c *= normal_cdf((m0 - s.mean) / sd);
    }
    Some(c.clamp(0.0, 1.0))
}
