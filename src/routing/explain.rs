//! Explanation: the plain-language reason stored with every decision.

use super::{
    DecisionInput, Excluded, ExclusionReason, ModelParams, ScoredCandidate, Severity, TermWeights,
};

/// Why nobody was chosen: how many candidates there were, and how many were excluded for each
/// reason.
pub(super) fn undecided(input: &DecisionInput, excluded: &[Excluded]) -> String {
    let count = |f: fn(&ExclusionReason) -> bool| excluded.iter().filter(|e| f(&e.reason)).count();
    format!(
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
    )
}

/// A duration for people: minutes under an hour, else hours to one decimal.
fn hours(seconds: f64) -> String {
    if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Why the first of `ranking` (best first, not empty) won: that it was the only eligible
/// candidate, or the runner-up it beat and by how much, the (up to two) components that put it ahead and the one that held it back most, and
/// whether the severity made the scores conservative or exploring.
pub(super) fn explain(
    ranking: &[ScoredCandidate],
    input: &DecisionInput,
    params: &ModelParams,
) -> String {
    let severity = input.severity;
    let a = &ranking[0];
    // Nothing is drawn on sev1/sev2 or for a recommendation: the uncertainty term there is
    // caution (a lower bound on thin evidence), and the explanation says so.
    let draws = !severity.is_critical() && !input.recommend_only;
    let mode = if input.recommend_only && !severity.is_critical() {
        format!(
            "a recommendation is never explored, so scores take a cautious bound (z = {})",
            params.explore_z
        )
    } else if severity.is_critical() {
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
            _ if draws => "exploration (posterior draw)".to_string(),
            _ => "caution (a lower bound where evidence is thin)".to_string(),
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
        .map(|d| {
            let name = match d.0 {
                "exploration" if !draws => "caution",
                other => other,
            };
            format!("{name} {:+.2}", d.1)
        })
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

/// Why the first of `ranking` (ordered by count, not empty) won when the decision follows the
/// count: how much of this kind of work they own against the runner-up, why the count orders
/// the picks, and whom the model would have picked.
pub(super) fn by_count(ranking: &[ScoredCandidate], weights: &TermWeights) -> String {
    let a = &ranking[0];
    let mut s = format!(
        "{} owns the most work of this kind (count {:.1}",
        a.human_id, a.count
    );
    if let Some(b) = ranking.get(1) {
        s.push_str(&format!(" against {:.1} for {}", b.count, b.human_id));
    }
    s.push_str(&format!(
        "); the picks follow the count, because where the model and the count disagreed lately the count's pick resolved more ({:.1} against {:.1})",
        weights.count_right, weights.model_right
    ));
    let (model, _) = super::picks_of(ranking);
    if let Some(m) = model.filter(|m| *m != a.human_id) {
        s.push_str(&format!("; the model's own pick was {m}"));
    }
    s.push('.');
    s
}
