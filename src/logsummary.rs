//! Repeated warnings and errors, summarised. In an outage every retry of every worker logs the
//! same failure, and the lines that matter scroll away under hundreds that say nothing new
//! (a database outage once wrote 222 ERROR lines in 20 s). A WARN or ERROR line is written the
//! first time its cause is seen; repeats are counted, and at most one line per cause per
//! interval says how many there were. INFO and below pass unchanged.
//!
//! A line's cause is its level, its target and its message with numbers, ids and quoted values
//! normalised away: `job 4 (jira_create_issue, wi-20260314092652-c7d71f) attempt 3 failed` and
//! `job 9 (jira_create_issue, wi-20260314092700-0a1b2c) attempt 1 failed` share one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{Level, Log, Metadata, Record};

/// How long repeats of a cause are counted before a line says how many there were.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Causes tracked at once; past this the least recently seen one is dropped (its count
/// written first), so a flood of distinct messages cannot grow memory without bound.
pub const MAX_CAUSES: usize = 1_000;
/// Longer causes are cut (two messages alike this far are one cause).
const MAX_CAUSE_CHARS: usize = 512;
/// The message a summary line repeats is cut to this (the first line was written whole).
const MAX_EXAMPLE_CHARS: usize = 2_000;

/// A line that says how many lines of one cause were not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub level: Level,
    pub target: String,
    pub message: String,
}

/// What to write for one line fed: the summaries that are due, then the line itself if
/// `write`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    pub summaries: Vec<Summary>,
    pub write: bool,
}

#[derive(Debug)]
struct Cause {
    level: Level,
    target: String,
    /// When the interval being counted began (the cause's first line, or its last summary).
    since: Instant,
    suppressed: u64,
    /// The latest line not written, for the summary.
    latest: String,
    /// Its key in `by_recency`.
    seen: u64,
}

/// The summarising rule, apart from clocks and writers: fed (time, level, target, message),
/// it answers what to write.
#[derive(Debug)]
pub struct Summariser {
    interval: Duration,
    cap: usize,
    causes: HashMap<String, Cause>,
    /// Causes by when they were last seen, oldest first (for dropping one at the cap).
    by_recency: BTreeMap<u64, String>,
    counter: u64,
    /// The earliest an interval ends: before it, `tick` has nothing to do.
    next_due: Option<Instant>,
}

impl Default for Summariser {
    fn default() -> Self {
        Summariser::new(INTERVAL, MAX_CAUSES)
    }
}

impl Summariser {
    pub fn new(interval: Duration, cap: usize) -> Summariser {
        Summariser {
            interval,
            cap: cap.max(1),
            causes: HashMap::new(),
            by_recency: BTreeMap::new(),
            counter: 0,
            next_due: None,
        }
    }

    /// How many causes are tracked.
    pub fn tracked(&self) -> usize {
        self.causes.len()
    }

    /// A line logged at `now`: the summaries due by then, and whether to write the line.
    pub fn feed(&mut self, now: Instant, level: Level, target: &str, message: &str) -> Fed {
        let mut summaries = self.tick(now);
        if level > Level::Warn {
            return Fed {
                summaries,
                write: true,
            };
        }
        self.counter += 1;
        let key = cause(level, target, message);
        if let Some(c) = self.causes.get_mut(&key) {
            self.by_recency.remove(&c.seen);
            c.seen = self.counter;
            self.by_recency.insert(c.seen, key);
            c.suppressed += 1;
            c.latest.clear();
            c.latest.push_str(cut(message, MAX_EXAMPLE_CHARS));
            return Fed {
                summaries,
                write: false,
            };
        }
        if self.causes.len() >= self.cap {
            if let Some((_, oldest)) = self.by_recency.pop_first() {
                if let Some(c) = self.causes.remove(&oldest) {
                    summaries.extend(summary(&c, now));
                }
            }
        }
        self.causes.insert(
            key.clone(),
            Cause {
                level,
                target: target.to_string(),
                since: now,
                suppressed: 0,
                latest: String::new(),
                seen: self.counter,
            },
        );
        self.by_recency.insert(self.counter, key);
        let due = now + self.interval;
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        Fed {
            summaries,
            write: true,
        }
    }

    /// The summaries due at `now`: one for each cause whose interval has ended with lines not
    /// written (its next interval starts now). A cause whose interval ended quietly is
    /// forgotten, so its next line is written again.
    pub fn tick(&mut self, now: Instant) -> Vec<Summary> {
        if self.next_due.is_none_or(|due| now < due) {
            return vec![];
        }
        let mut due: Vec<(u64, Summary)> = vec![];
        let mut quiet: Vec<u64> = vec![];
        let mut next_due: Option<Instant> = None;
        for c in self.causes.values_mut() {
            let mut ends = c.since + self.interval;
            if now >= ends {
                match summary(c, now) {
                    Some(s) => {
                        due.push((c.seen, s));
                        c.since = now;
                        c.suppressed = 0;
                        c.latest.clear();
                        ends = now + self.interval;
                    }
                    None => {
                        quiet.push(c.seen);
                        continue;
                    }
                }
            }
            next_due = Some(next_due.map_or(ends, |d| d.min(ends)));
        }
        for seen in quiet {
            if let Some(key) = self.by_recency.remove(&seen) {
                self.causes.remove(&key);
            }
        }
        self.next_due = next_due;
        due.sort_by_key(|(seen, _)| *seen);
        due.into_iter().map(|(_, s)| s).collect()
    }

    /// Every count not yet written (at exit); forgets all causes.
    pub fn finish(&mut self, now: Instant) -> Vec<Summary> {
        let mut due: Vec<(u64, Summary)> = self
            .causes
            .drain()
            .filter_map(|(_, c)| summary(&c, now).map(|s| (c.seen, s)))
            .collect();
        self.by_recency.clear();
        self.next_due = None;
        due.sort_by_key(|(seen, _)| *seen);
        due.into_iter().map(|(_, s)| s).collect()
    }
}

/// The line saying how many of a cause's lines were not written since `c.since`, if any.
fn summary(c: &Cause, now: Instant) -> Option<Summary> {
    if c.suppressed == 0 {
        return None;
    }
    let secs = (now.saturating_duration_since(c.since).as_secs_f64().round() as u64).max(1);
    Some(Summary {
        level: c.level,
        target: c.target.clone(),
        message: format!(
            "{} (and {} more like this in the last {secs} s)",
            c.latest.trim_end(),
            c.suppressed
        ),
    })
}

/// The cause of a line: level, target and the message with numbers, ids and quoted values
/// replaced, so that repeats of one failure about different jobs, items or hosts match.
pub fn cause(level: Level, target: &str, message: &str) -> String {
    let mut key = format!("{level} {target} ");
    let chars: Vec<char> = message.chars().collect();
    let mut word = String::new();
    let mut i = 0;
    while i < chars.len() && key.len() < MAX_CAUSE_CHARS {
        let c = chars[i];
        // A quote opens a quoted value after a space or punctuation, not inside a word
        // ("don't"); it must close on the same line.
        if matches!(c, '"' | '\'' | '`') && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let close = chars[i + 1..]
                .iter()
                .take_while(|&&d| d != '\n')
                .position(|&d| d == c);
            if let Some(len) = close {
                end_word(&mut key, &mut word);
                key.push(c);
                key.push('_');
                key.push(c);
                i += len + 2;
                continue;
            }
        }
        if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/') {
            word.push(c);
        } else {
            end_word(&mut key, &mut word);
            key.push(c);
        }
        i += 1;
    }
    end_word(&mut key, &mut word);
    cut(&key, MAX_CAUSE_CHARS).to_string()
}

/// A word with a digit in it (a count, an id, a duration, an address) stands for any.
fn end_word(key: &mut String, word: &mut String) {
    if word.chars().any(|c| c.is_ascii_digit()) {
        key.push('#');
    } else {
        key.push_str(word);
    }
    word.clear();
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A logger that summarises repeats before `inner` (which filters, formats and writes) sees
/// them. `tick` writes the summaries due (call it every second or so: a cause's count is
/// written even if no other line comes), `finish` the ones pending at exit.
pub struct SummarisingLogger<L> {
    inner: L,
    summariser: Mutex<Summariser>,
}

impl<L: Log> SummarisingLogger<L> {
    pub fn new(inner: L, summariser: Summariser) -> SummarisingLogger<L> {
        SummarisingLogger {
            inner,
            summariser: Mutex::new(summariser),
        }
    }

    pub fn tick(&self) {
        let due = self.summariser().tick(Instant::now());
        self.write(due);
    }

    pub fn finish(&self) {
        let due = self.summariser().finish(Instant::now());
        self.write(due);
        self.inner.flush();
    }

    fn summariser(&self) -> MutexGuard<'_, Summariser> {
        // A panic while logging leaves nothing half-done that matters.
        self.summariser.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, summaries: Vec<Summary>) {
        for s in summaries {
            self.inner.log(
                &Record::builder()
                    .level(s.level)
                    .target(&s.target)
                    .args(format_args!("{}", s.message))
                    .build(),
            );
        }
    }
}

impl<L: Log> Log for SummarisingLogger<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let now = Instant::now();
        let fed = if record.level() <= Level::Warn {
            let message = record.args().to_string();
            self.summariser()
                .feed(now, record.level(), record.target(), &message)
        } else {
            // INFO and below skip the lock: at intake rates every decision logs a line, and
            // the timer thread's tick writes what is due.
            Fed {
                summaries: Vec::new(),
                write: true,
            }
        };
        // Written outside the lock: a slow writer holds up only its own thread.
        self.write(fed.summaries);
        if fed.write {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB_DOWN: &str = "connection to server at \"127.0.0.1\", port 5432 failed: Connection \
                           refused\n\tIs the server running on that host?";

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    fn messages(summaries: &[Summary]) -> Vec<&str> {
        summaries.iter().map(|s| s.message.as_str()).collect()
    }

    #[test]
    fn the_first_line_is_written_and_repeats_within_the_interval_are_counted() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 100);
        assert_eq!(
            s.feed(t0, Level::Error, "r2d2", DB_DOWN),
            Fed {
                summaries: vec![],
                write: true
            }
        );
        for i in 1..=37 {
            let fed = s.feed(at(t0, i as f64 * 0.25), Level::Error, "r2d2", DB_DOWN);
            assert!(
                !fed.write && fed.summaries.is_empty(),
                "repeat {i}: {fed:?}"
            );
        }
        assert!(s.tick(at(t0, 9.9)).is_empty(), "the interval has not ended");
        let due = s.tick(at(t0, 10.0));
        assert_eq!(
            due,
            vec![Summary {
                level: Level::Error,
                target: "r2d2".into(),
                message: format!("{DB_DOWN} (and 37 more like this in the last 10 s)"),
            }]
        );
        assert!(s.tick(at(t0, 10.5)).is_empty(), "one summary per interval");
    }

    #[test]
    fn an_ongoing_cause_gets_one_summary_per_interval_with_that_intervals_count() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 100);
        let mut written = 0;
        let mut summaries = vec![];
        // Four lines a second for 35 s.
        for i in 0..140 {
            let fed = s.feed(at(t0, i as f64 * 0.25), Level::Error, "r2d2", DB_DOWN);
            written += usize::from(fed.write);
            summaries.extend(fed.summaries);
        }
        summaries.extend(s.finish(at(t0, 35.0)));
        assert_eq!(written, 1);
        assert_eq!(
            messages(&summaries),
            vec![
                format!("{DB_DOWN} (and 39 more like this in the last 10 s)"),
                format!("{DB_DOWN} (and 40 more like this in the last 10 s)"),
                format!("{DB_DOWN} (and 40 more like this in the last 10 s)"),
                format!("{DB_DOWN} (and 20 more like this in the last 5 s)"),
            ]
        );
    }

    #[test]
    fn a_cause_seen_again_after_a_quiet_interval_is_written_again() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 100);
        assert!(
            s.feed(t0, Level::Warn, "goliath", "Jira returned 503")
                .write
        );
        assert!(
            !s.feed(at(t0, 1.0), Level::Warn, "goliath", "Jira returned 502")
                .write
        );
        let due = s.tick(at(t0, 10.0));
        assert_eq!(
            messages(&due),
            ["Jira returned 502 (and 1 more like this in the last 10 s)"]
        );
        // Nothing from 10 s to 20 s: forgotten, so the next one is news again.
        assert!(s.tick(at(t0, 20.0)).is_empty());
        assert_eq!(s.tracked(), 0);
        let fed = s.feed(at(t0, 21.0), Level::Warn, "goliath", "Jira returned 500");
        assert!(fed.write && fed.summaries.is_empty(), "{fed:?}");
        // A single line with nothing after it never gets a summary.
        assert!(s.finish(at(t0, 22.0)).is_empty());
    }

    #[test]
    fn the_summary_is_written_by_the_next_call_of_any_level_when_no_repeat_comes() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 100);
        s.feed(t0, Level::Error, "r2d2", DB_DOWN);
        s.feed(at(t0, 1.0), Level::Error, "r2d2", DB_DOWN);
        let fed = s.feed(at(t0, 12.0), Level::Info, "goliath", "listening");
        assert!(fed.write);
        assert_eq!(
            messages(&fed.summaries),
            [format!("{DB_DOWN} (and 1 more like this in the last 12 s)")]
        );
    }

    #[test]
    fn info_and_below_pass_unchanged_and_are_not_tracked() {
        let t0 = Instant::now();
        let mut s = Summariser::default();
        for level in [Level::Info, Level::Debug, Level::Trace] {
            for _ in 0..3 {
                assert!(s.feed(t0, level, "goliath", "job 4 done").write);
            }
        }
        assert_eq!(s.tracked(), 0);
        assert!(s.finish(t0).is_empty());
    }

    #[test]
    fn different_causes_are_counted_apart() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 100);
        let lines = [
            (Level::Error, "r2d2", DB_DOWN),
            (Level::Warn, "r2d2", DB_DOWN),
            (Level::Error, "goliath::jobs", DB_DOWN),
            (
                Level::Error,
                "r2d2",
                "server closed the connection unexpectedly",
            ),
        ];
        for (level, target, message) in lines {
            assert!(s.feed(t0, level, target, message).write, "{level} {target}");
        }
        for (i, (level, target, message)) in lines.into_iter().enumerate() {
            for _ in 0..=i {
                assert!(!s.feed(at(t0, 1.0), level, target, message).write);
            }
        }
        let due = s.tick(at(t0, 10.0));
        let counts: Vec<(Level, &str, &str)> = due
            .iter()
            .map(|d| {
                let count = d.message.rsplit_once("(and ").unwrap().1;
                (d.level, d.target.as_str(), count.split(' ').next().unwrap())
            })
            .collect();
        assert_eq!(
            counts,
            [
                (Level::Error, "r2d2", "1"),
                (Level::Warn, "r2d2", "2"),
                (Level::Error, "goliath::jobs", "3"),
                (Level::Error, "r2d2", "4"),
            ]
        );
    }

    #[test]
    fn numbers_ids_and_quoted_values_do_not_make_a_new_cause() {
        let same = [
            (
                "job 4 (jira_create_issue, wi-20260314092652-c7d71f) attempt 3 failed, retrying \
                 in 4.2s: Jira returned 503",
                "job 17 (jira_create_issue, wi-20260314100000-0a1b2c) attempt 1 failed, \
                 retrying in 812ms: Jira returned 502",
            ),
            (
                "connection to server at \"10.0.0.7\", port 5432 failed",
                "connection to server at \"db.internal\", port 6543 failed",
            ),
            ("unknown field 'priority'", "unknown field 'labels'"),
            ("OPS-12: don't know `a b`", "OPS-9: don't know `c`"),
        ];
        for (a, b) in same {
            assert_eq!(
                cause(Level::Warn, "t", a),
                cause(Level::Warn, "t", b),
                "{a} / {b}"
            );
        }
        let different = [
            ("Jira returned 503", "PagerDuty returned 503"),
            ("don't retry", "do retry"),
        ];
        for (a, b) in different {
            assert_ne!(cause(Level::Warn, "t", a), cause(Level::Warn, "t", b));
        }
        assert_ne!(
            cause(Level::Warn, "t", "x"),
            cause(Level::Error, "t", "x"),
            "the level is part of the cause"
        );
        assert_ne!(cause(Level::Warn, "a", "x"), cause(Level::Warn, "b", "x"));
        let long = "y".repeat(10_000);
        assert!(cause(Level::Warn, "t", &long).len() <= MAX_CAUSE_CHARS);
    }

    #[test]
    fn at_the_cap_the_least_recently_seen_cause_is_dropped_with_its_count_written() {
        let t0 = Instant::now();
        let mut s = Summariser::new(Duration::from_secs(10), 3);
        for name in ["a", "b", "c"] {
            assert!(s.feed(t0, Level::Warn, name, "x").write);
        }
        // "a" and "b" are seen again, so "c" is now the least recently seen.
        assert!(!s.feed(at(t0, 1.0), Level::Warn, "a", "x").write);
        assert!(!s.feed(at(t0, 1.0), Level::Warn, "b", "x").write);
        assert!(!s.feed(at(t0, 1.0), Level::Warn, "a", "x").write);
        let fed = s.feed(at(t0, 2.0), Level::Warn, "d", "x");
        assert!(fed.write);
        assert!(fed.summaries.is_empty(), "c had nothing pending: {fed:?}");
        assert_eq!(s.tracked(), 3);
        let fed = s.feed(at(t0, 3.0), Level::Warn, "e", "x");
        assert_eq!(
            fed.summaries,
            [Summary {
                level: Level::Warn,
                target: "b".into(),
                message: "x (and 1 more like this in the last 3 s)".into()
            }]
        );
        assert_eq!(s.tracked(), 3);
        // A flood of distinct causes stays within the cap.
        for i in 0..10_000 {
            s.feed(at(t0, 4.0), Level::Error, &format!("flood{i}"), "x");
            assert!(s.tracked() <= 3);
        }
        assert_eq!(s.by_recency.len(), s.tracked());
    }

    /// Collects what reaches the writer.
    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata) -> bool {
            metadata.level() <= Level::Info
        }
        fn log(&self, record: &Record) {
            self.0.lock().unwrap().push(format!(
                "{} {} {}",
                record.level(),
                record.target(),
                record.args()
            ));
        }
        fn flush(&self) {}
    }

    #[test]
    fn the_logger_writes_first_lines_passes_info_and_summarises_at_exit() {
        let logger = SummarisingLogger::new(Capture::default(), Summariser::default());
        let line = |level: Level, message: &str| {
            logger.log(
                &Record::builder()
                    .level(level)
                    .target("r2d2")
                    .args(format_args!("{message}"))
                    .build(),
            )
        };
        for _ in 0..5 {
            line(Level::Error, DB_DOWN);
            line(Level::Info, "checked out");
            line(Level::Debug, "filtered out by the inner logger");
        }
        logger.tick();
        logger.finish();
        let lines = logger.inner.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 7, "{lines:#?}");
        assert_eq!(lines[0], format!("ERROR r2d2 {DB_DOWN}"));
        assert_eq!(lines[1..6], vec!["INFO r2d2 checked out"; 5]);
        assert!(
            lines[6].starts_with(&format!("ERROR r2d2 {DB_DOWN} (and 4 more like this")),
            "{}",
            lines[6]
        );
    }
}
