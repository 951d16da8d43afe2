//! Exploration: how uncertainty moves a score. On sev3/sev4 a Thompson draw from the
//! posteriors, so people with little history get tried where mistakes are cheap; on sev1/sev2
//! a lower credible bound, so an unproven person does not get a critical incident over a
//! proven one.

use super::evidence::Evidence;
use super::rng::{hash_str, mix64, SplitMix64};
use super::scoring::Posterior;
use super::{DecisionInput, ModelParams, Severity};

/// How one decision treats uncertainty.
pub(super) struct Exploration {
    /// Sev1/sev2: the conservative bound, never a draw.
    critical: bool,
    /// Standard deviations of pessimism: the credible bound's width on sev1/sev2, the shift
    /// before the draw on sev3/sev4.
    z: f64,
    /// Scale of the Thompson draw (0: no draw).
    scale: f64,
    /// Seed of the draw, from the work item id.
    seed: u64,
}

impl Exploration {
    /// The decision's exploration settings: `z` for its severity, and the draw's scale.
    ///
    /// Exploration only pays where Goliath's own assignments produce the evidence. Scale it by
    /// the share of this service's good resolutions that Goliath assigned, counting one assigned
    /// pseudo-resolution (full exploration until evidence says otherwise): where people route
    /// the work, a recommendation teaches little. A recommendation only (shadow mode) teaches
    /// nothing: no draw at all.
    pub(super) fn new(input: &DecisionInput, pool: &Evidence, params: &ModelParams) -> Self {
        let severity = input.severity;
        let z = match severity {
            Severity::Sev1 => params.sev1_z,
            Severity::Sev2 => params.sev2_z,
            _ => params.explore_z,
        };
        let scale = if input.recommend_only {
            0.0
        } else {
            // Good resolutions of work Goliath assigned, against everything people showed
            // (work they routed or took over). Take-overs count even before the work closes:
            // where work runs for weeks, people reveal who owns it long before any resolve.
            let assigned = pool.assigned.max(0.0);
            let shown = (pool.own - pool.assigned).max(0.0);
            params.explore_scale * (assigned + 1.0) / (assigned + shown + 1.0)
        };
        Self {
            critical: severity.is_critical(),
            z,
            scale,
            seed: hash_str(&input.work_item_id),
        }
    }

    /// The exploration component of one candidate's score, as its (success, speed) parts: the
    /// terms with the success log-odds and the log time shifted (drawn from their posteriors
    /// on sev3/sev4, seeded by the work item and the person so the draw is reproducible; `z`
    /// standard deviations towards the worse on sev1/sev2), less the mean terms. `success` is
    /// the candidate's mean (unweighted) success term.
    pub(super) fn component(&self, human_id: &str, post: &Posterior, success: f64) -> (f64, f64) {
        let (z, sd_logit, sd_mu) = (self.z, post.sd_logit, post.sd_mu);
        let (d_logit, d_mu) = if self.critical {
            (-z * sd_logit, z * sd_mu)
        } else if self.scale > 0.0 {
            let mut r = SplitMix64::new(mix64(self.seed ^ hash_str(human_id).rotate_left(17)));
            let (z1, z2) = r.normal_pair();
            (
                (self.scale * z1 - z) * sd_logit,
                (self.scale * z2 + z) * sd_mu,
            )
        } else {
            (-z * sd_logit, z * sd_mu)
        };
        // ln sigmoid(x) = -ln(1 + e^-x)
        let ln_p_draw = -(-(post.logit + d_logit)).exp().ln_1p();
        (ln_p_draw - success, -d_mu)
    }
}
