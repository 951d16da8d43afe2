//! Machine CPU time over a stretch of a benchmark, from `/proc/stat`. On a shared machine whose
//! speed drifts from minute to minute, CPU per operation moves far less than operations per
//! second, and it tells work saved from latency saved.

/// All CPUs' busy and total ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    busy: u64,
    total: u64,
}

/// What a stretch between two samples used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsed {
    /// CPU seconds, all cores together.
    pub seconds: f64,
    /// Share of the machine's capacity that was busy (steal counts as capacity lost).
    pub busy: f64,
}

impl CpuSample {
    /// `None` where there is no `/proc/stat` (not Linux).
    pub fn now() -> Option<CpuSample> {
        parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    pub fn since(&self, earlier: &CpuSample) -> CpuUsed {
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as f64 } else { 100.0 };
        let busy = self.busy.saturating_sub(earlier.busy) as f64;
        let total = self.total.saturating_sub(earlier.total) as f64;
        CpuUsed {
            seconds: busy / hz,
            busy: if total > 0.0 { busy / total } else { 0.0 },
        }
    }
}

impl CpuUsed {
    /// Microseconds of machine CPU per operation.
    pub fn micros_per(&self, operations: f64) -> f64 {
        if operations > 0.0 {
            self.seconds * 1e6 / operations
        } else {
            0.0
        }
    }
}

/// The `cpu` line: user nice system idle iowait irq softirq steal (guest time is inside user).
fn parse(stat: &str) -> Option<CpuSample> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Some(CpuSample {
        busy,
        total: busy + at(3) + at(4) + at(7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_iowait_and_steal() {
        let a = parse("cpu  100 10 50 1000 20 0 5 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n").unwrap();
        assert_eq!(
            a,
            CpuSample {
                busy: 165,
                total: 1192
            }
        );
        let b = parse("cpu  300 10 100 1400 20 0 5 7 0 0\n").unwrap();
        let used = b.since(&a);
        assert!((used.busy - 250.0 / 650.0).abs() < 1e-9, "{used:?}");
        assert!(used.seconds > 0.0);
        assert_eq!(parse("intr 1 2 3\n"), None);
    }
}
