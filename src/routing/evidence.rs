//! Evidence: each candidate's learned records, decayed to the incident's time and summed per
//! level (this service, this severity, the context tags, other services), the service pool
//! over every candidate, and who is eligible at all.

use chrono::{DateTime, Utc};

use super::{
    CandidateInput, DecisionInput, Excluded, ExclusionReason, ModelParams, Severity, SkillState,
};

/// Decayed evidence aggregated for one candidate.
#[derive(Default, Clone, Copy)]
pub(super) struct Evidence {
    pub(super) ok: f64,
    pub(super) fail: f64,
    pub(super) tw: f64,
    pub(super) ts: f64,
    pub(super) tss: f64,
    pub(super) own: f64,
    /// Of `own`, what Goliath's own assignments produced.
    pub(super) assigned: f64,
    pub(super) oc_t: f64,
    pub(super) oc_k: f64,
}

impl Evidence {
    fn add(&mut self, s: &SkillState, w: f64) {
        self.ok += w * s.successes;
        self.fail += w * s.failures;
        self.tw += w * s.time_weight;
        self.ts += w * s.log_time_sum;
        self.tss += w * s.log_time_sq_sum;
        self.own += w * s.owned;
        self.assigned += w * s.assigned;
        self.oc_t += w * s.on_call_trials;
        self.oc_k += w * s.on_call_kept;
    }

    fn add_ev(&mut self, e: &Evidence, w: f64) {
        self.ok += w * e.ok;
        self.fail += w * e.fail;
        self.tw += w * e.tw;
        self.ts += w * e.ts;
        self.tss += w * e.tss;
        self.own += w * e.own;
        self.assigned += w * e.assigned;
        self.oc_t += w * e.oc_t;
        self.oc_k += w * e.oc_k;
    }

    fn minus_clamped(&self, e: &Evidence) -> Evidence {
        Evidence {
            ok: (self.ok - e.ok).max(0.0),
            fail: (self.fail - e.fail).max(0.0),
            tw: (self.tw - e.tw).max(0.0),
            ts: if self.tw - e.tw > 0.0 {
                self.ts - e.ts
            } else {
                0.0
            },
            tss: if self.tw - e.tw > 0.0 {
                (self.tss - e.tss).max(0.0)
            } else {
                0.0
            },
            own: (self.own - e.own).max(0.0),
            assigned: (self.assigned - e.assigned).max(0.0),
            oc_t: (self.oc_t - e.oc_t).max(0.0),
            oc_k: (self.oc_k - e.oc_k).max(0.0),
        }
    }
}

/// Per-candidate working numbers.
pub(super) struct Work {
    /// Index of the candidate in [`DecisionInput::candidates`].
    pub(super) idx: usize,
    pub(super) service: Evidence,
    pub(super) sev: Evidence,
    pub(super) ctx: Evidence,
    /// Decayed owned work on each of the incident's context tags, in
    /// [`DecisionInput::context`] order (`ctx.own` is their sum).
    pub(super) ctx_own: Vec<f64>,
    /// The part of `ctx_own` on this service's incidents, where the glue keeps it.
    pub(super) ctx_own_here: Vec<f64>,
    /// Of `ctx_own` and `ctx_own_here`, what Goliath's own right picks produced.
    pub(super) ctx_assigned: Vec<f64>,
    pub(super) ctx_assigned_here: Vec<f64>,
    pub(super) elsewhere: Evidence,
    /// (time weight, log-time sum) of this service's records by severity.
    pub(super) by_sev: [(f64, f64); 4],
}

/// What [`gather`] finds: the eligible candidates' evidence, the ineligible ones, and the
/// service pool.
pub(super) struct Gathered {
    /// Every ineligible candidate, with the reason, in visit (id) order.
    pub(super) excluded: Vec<Excluded>,
    /// The eligible candidates, in visit (id) order.
    pub(super) work: Vec<Work>,
    /// Sum of every candidate's evidence for this service (eligible or not).
    pub(super) pool: Evidence,
    /// (time weight, log-time sum) of the pool by severity.
    pub(super) pool_by_sev: [(f64, f64); 4],
    /// On-call (trials, kept) over every candidate's overall record.
    pub(super) oc_all: (f64, f64),
}

/// Gathers each candidate's decayed evidence and the pooled evidence, and sorts out who is
/// eligible.
///
/// Every candidate's records for the service count towards the pool (the service's typical
/// behaviour, which the priors start from), eligible or not; so does every overall on-call
/// record. Only eligible candidates get a [`Work`] entry, with their records for this service, for this
/// severity, on the incident's context tags, and elsewhere (their overall record less this
/// service's). Candidates are visited in id order, so floating-point sums do not depend on the
/// input order, and a repeated id is excluded as a duplicate.
pub(super) fn gather(input: &DecisionInput, params: &ModelParams) -> Gathered {
    let at = input.at;
    let mut excluded = Vec::new();
    let mut work: Vec<Work> = Vec::with_capacity(input.candidates.len());
    let mut pool = Evidence::default();
    let mut pool_by_sev = [(0.0, 0.0); 4];
    // On-call (trials, kept) over every candidate's overall record.
    let mut oc_all = (0.0, 0.0);
    let mut cache: (Option<DateTime<Utc>>, f64) = (None, 1.0);

    // Visit candidates in id order so that floating-point sums do not depend on input order.
    let mut visit: Vec<usize> = (0..input.candidates.len()).collect();
    visit.sort_by(|&a, &b| {
        input.candidates[a]
            .human_id
            .cmp(&input.candidates[b].human_id)
            .then(a.cmp(&b))
    });
    let mut prev_id: Option<&str> = None;
    for idx in visit {
        let c = &input.candidates[idx];
        let duplicate = prev_id == Some(c.human_id.as_str());
        prev_id = Some(c.human_id.as_str());
        if duplicate {
            excluded.push(Excluded {
                human_id: c.human_id.clone(),
                reason: ExclusionReason::DuplicateCandidate,
            });
            continue;
        }
        let mut service = Evidence::default();
        let mut sev = Evidence::default();
        let mut by_sev = [(0.0, 0.0); 4];
        for r in &c.skill {
            if r.service != input.service {
                continue;
            }
            let f = cached_decay(&mut cache, &r.state, at, params);
            service.add(&r.state, f);
            if r.severity == input.severity {
                sev.add(&r.state, f);
            }
            let b = &mut by_sev[r.severity as usize];
            b.0 += f * r.state.time_weight;
            b.1 += f * r.state.log_time_sum;
        }
        pool.add_ev(&service, 1.0);
        for (p, b) in pool_by_sev.iter_mut().zip(&by_sev) {
            p.0 += b.0;
            p.1 += b.1;
        }
        if let Some(o) = &c.overall {
            let f = cached_decay(&mut cache, o, at, params);
            oc_all.0 += f * o.on_call_trials;
            oc_all.1 += f * o.on_call_kept;
        }

        if let Some(reason) = exclusion(c, input) {
            excluded.push(Excluded {
                human_id: c.human_id.clone(),
                reason,
            });
            continue;
        }

        let mut ctx = Evidence::default();
        let mut ctx_own = vec![0.0; input.context.len()];
        let mut ctx_own_here = vec![0.0; input.context.len()];
        let mut ctx_assigned = vec![0.0; input.context.len()];
        let mut ctx_assigned_here = vec![0.0; input.context.len()];
        if !input.context.is_empty() {
            for r in &c.context_skill {
                let Some(t) = input.context.iter().position(|tag| *tag == r.tag) else {
                    continue;
                };
                let here = match &r.service {
                    None => false,
                    Some(s) if *s == input.service => true,
                    Some(_) => continue,
                };
                let f = cached_decay(&mut cache, &r.state, at, params);
                if here {
                    // Part of the record across services: it only says where the owned work was.
                    ctx_own_here[t] += f * r.state.owned;
                    ctx_assigned_here[t] += f * r.state.assigned;
                } else {
                    ctx.add(&r.state, f);
                    ctx_own[t] += f * r.state.owned;
                    ctx_assigned[t] += f * r.state.assigned;
                }
            }
        }
        let elsewhere = match &c.overall {
            Some(o) => {
                let mut e = Evidence::default();
                e.add(o, cached_decay(&mut cache, o, at, params));
                e.minus_clamped(&service)
            }
            None => Evidence::default(),
        };
        work.push(Work {
            idx,
            service,
            sev,
            ctx,
            ctx_own,
            ctx_own_here,
            ctx_assigned,
            ctx_assigned_here,
            elsewhere,
            by_sev,
        });
    }
    Gathered {
        excluded,
        work,
        pool,
        pool_by_sev,
        oc_all,
    }
}

/// Why a (non-duplicate) candidate cannot take the incident, if they cannot.
fn exclusion(c: &CandidateInput, input: &DecisionInput) -> Option<ExclusionReason> {
    if !c.active {
        Some(ExclusionReason::Inactive)
    } else if !c.services.is_empty() && !c.services.contains(&input.service) {
        Some(ExclusionReason::NotInService)
    } else if input.on_call_required && !c.on_call {
        Some(ExclusionReason::NotOnCall)
    } else {
        match c.max_active {
            Some(m) if c.open_items >= m => Some(ExclusionReason::AtCapacity {
                open_items: c.open_items,
                max_active: m,
            }),
            _ => None,
        }
    }
}

/// Decay factor with a one-entry cache: states written by the same event share a timestamp.
fn cached_decay(
    cache: &mut (Option<DateTime<Utc>>, f64),
    s: &SkillState,
    at: DateTime<Utc>,
    params: &ModelParams,
) -> f64 {
    if cache.0 != s.updated_at {
        *cache = (s.updated_at, s.decay_factor(at, params));
    }
    cache.1
}

/// Removes each severity's log-time offset from the pool and from every eligible candidate's
/// service and severity evidence, and returns the offsets (by severity index).
///
/// Severity shifts everyone's times alike (critical incidents get worked faster), so
/// times are compared after removing each severity's offset from the service's mean log
/// time (each offset shrunk to 0 with `prior_time_strength`). A person's time record then
/// does not depend on their mix of severities, and all their severities inform it. The
/// incident's own offset is added back for the expected time.
pub(super) fn remove_severity_offsets(
    g: &mut Gathered,
    severity: Severity,
    params: &ModelParams,
) -> [f64; 4] {
    let delta: [f64; 4] = {
        let mut d = [0.0; 4];
        if g.pool.tw > 0.0 {
            let mean = g.pool.ts / g.pool.tw;
            for (x, &(tw, ts)) in d.iter_mut().zip(&g.pool_by_sev) {
                *x = (ts - tw * mean) / (tw + params.prior_time_strength);
            }
        }
        d
    };
    let sev_idx = severity as usize;
    remove_offsets(&mut g.pool, &g.pool_by_sev, &delta, None);
    for w in &mut g.work {
        remove_offsets(&mut w.service, &w.by_sev, &delta, None);
        remove_offsets(&mut w.sev, &w.by_sev, &delta, Some(sev_idx));
    }
    delta
}

/// Removes per-severity log-time offsets from evidence built from records of those severities.
fn remove_offsets(
    ev: &mut Evidence,
    by_sev: &[(f64, f64); 4],
    delta: &[f64; 4],
    only: Option<usize>,
) {
    for (s, (&(tw, ts), &d)) in by_sev.iter().zip(delta).enumerate() {
        if only.is_some_and(|o| o != s) || tw <= 0.0 {
            continue;
        }
        ev.ts -= d * tw;
        ev.tss = (ev.tss - 2.0 * d * ts + d * d * tw).max(0.0);
    }
}

/// The evidence a candidate's own estimates rest on: this severity at full weight, the other
/// severities of this service at `other_severity_weight`, and the context tags at
/// `context_weight`, with counts kept non-negative.
pub(super) fn weighted(w: &Work, params: &ModelParams) -> Evidence {
    let w_other = params.other_severity_weight;
    let w_ctx = params.context_weight;
    let mut ev = Evidence::default();
    ev.add_ev(&w.sev, 1.0);
    ev.add_ev(&w.service, w_other);
    ev.add_ev(&w.sev, -w_other);
    ev.add_ev(&w.ctx, w_ctx);
    ev.ok = ev.ok.max(0.0);
    ev.fail = ev.fail.max(0.0);
    ev.tw = ev.tw.max(0.0);
    ev
}
