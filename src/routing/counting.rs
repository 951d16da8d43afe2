//! The count: who owns the most of this kind of work, the way a lookup table by count would
//! pick. Goliath keeps it beside the model as a second expert. Where, on the incidents on which
//! the two disagreed, the count has lately been right more often than the model
//! ([`TermWeights::trusts_count`]), the ranking follows the count; otherwise the model. So on a
//! history where ownership is all there is to learn, Goliath does no worse than counting, and
//! where skill shows, the model keeps the ranking.

use super::evidence::Work;
use super::{ScoredCandidate, TermWeights};

/// Each eligible candidate's ownership count, in `work` order: their decayed owned work on
/// the finest key that has any (the context tag with the fewest owned items here among those
/// with some), else on the service. Goliath's own right picks count in full, as a lookup's
/// own picks would.
pub(super) fn ownership_counts(work: &[Work]) -> Vec<f64> {
    let n_tags = work.first().map_or(0, |w| w.ctx_own_here.len());
    let finest = (0..n_tags)
        .map(|t| {
            (
                t,
                work.iter().map(|w| w.ctx_own_here[t].max(0.0)).sum::<f64>(),
            )
        })
        .filter(|&(_, total)| total > 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    match finest {
        Some((t, _)) => work.iter().map(|w| w.ctx_own_here[t].max(0.0)).collect(),
        None => work.iter().map(|w| w.service.own.max(0.0)).collect(),
    }
}

/// The ranking the decision follows: the model's, or, where the weights trust the count and
/// anyone within their usual load owns work of this kind, by count among those within their
/// usual load (highest first; equal counts keep the model's order), then everyone over it in
/// the model's order. A count knows nothing of load: left to itself it would hand every
/// incident to the one person who owns the most. Returns whether the count ordered it.
pub(super) fn follow(ranked: &mut [ScoredCandidate], weights: &TermWeights) -> bool {
    let free = |c: &ScoredCandidate| c.components.load >= 0.0;
    let anyone = ranked.iter().any(|c| c.count > 0.0 && free(c));
    if !anyone || !weights.trusts_count() {
        return false;
    }
    // A stable sort: ties keep the model's order.
    ranked.sort_by(|a, b| {
        free(b).cmp(&free(a)).then_with(|| match free(a) {
            true => b.count.total_cmp(&a.count),
            false => std::cmp::Ordering::Equal,
        })
    });
    true
}

/// One ranked candidate as [`picks`] reads it: id, score, ownership count, and the load
/// component (below 0 when over their usual load, where the count does not pick them).
pub type PickEntry<'a> = (&'a str, f64, f64, f64);

/// The model's pick and the count's pick of a ranking (entries in any order): the highest
/// score (ties by id), and among those within their usual load the highest positive count
/// (ties by score, then id; `None` when no such person owns any such work).
pub fn picks<'a>(
    entries: impl IntoIterator<Item = PickEntry<'a>>,
) -> (Option<&'a str>, Option<&'a str>) {
    let mut model: Option<(&str, f64)> = None;
    let mut count: Option<(&str, f64, f64)> = None;
    for (id, score, n, load) in entries {
        let better_model = match model {
            None => true,
            Some((mid, ms)) => score > ms || (score == ms && id < mid),
        };
        if better_model {
            model = Some((id, score));
        }
        if n > 0.0 && load >= 0.0 {
            let better_count = match count {
                None => true,
                Some((cid, cn, cs)) => {
                    n > cn || (n == cn && (score > cs || (score == cs && id < cid)))
                }
            };
            if better_count {
                count = Some((id, n, score));
            }
        }
    }
    (model.map(|m| m.0), count.map(|c| c.0))
}

/// [`picks`] of a decided ranking.
pub fn picks_of(ranking: &[ScoredCandidate]) -> (Option<&str>, Option<&str>) {
    picks(
        ranking
            .iter()
            .map(|c| (c.human_id.as_str(), c.score, c.count, c.components.load)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_pick_has_the_best_score_and_the_count_pick_the_most_owned_work() {
        let entries = [
            ("b", 1.0, 3.0, 0.0),
            ("a", 2.0, 1.0, 0.0),
            ("c", 2.0, 3.0, 0.0),
            ("d", 0.5, 0.0, 0.0),
            ("e", 0.1, 9.0, -0.4),
        ];
        // e owns the most but is over their usual load.
        assert_eq!(picks(entries), (Some("a"), Some("c")));
        // Nobody owns any such work: the count has no pick.
        let none = [("a", 1.0, 0.0, 0.0), ("b", 0.0, 0.0, 0.0)];
        assert_eq!(picks(none), (Some("a"), None));
        assert_eq!(picks([]), (None, None));
    }
}
