//! `goliath replay xfce`: the Xfce Bugzilla bug list (fixed bugs with product, component,
//! assignee and title) replayed through the same code as the BPIC log.
//!
//! Each fixed bug becomes a [`Request`]: service = the product, context tag = the component
//! (`product:<component>` in the replay's tag, so the lookups key by product and component),
//! resolver = the assignee, severity sev3, nobody paged. The list has no creation times, only
//! ids that grow with creation: bugs are replayed in id order, at times spread evenly over the
//! span of the list's last-changed times, and each outcome is learned before the next bug
//! (immediate feedback). Bugs closed without a fix are left out: their assignee is often a
//! default account, not a person who did the work.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::replay::{
    params_from_json, print_table, Feedback, Mode, ReplayArgs, Request, RosterKind,
};
use crate::routing::Severity;

/// Where the bug list is when `--path` is not given.
pub const DEFAULT_PATH: &str = "../shared/data/xfce/xfce_all.csv.bz2";

/// One row of the list: `bug_id, product, component, assignee, status, resolution, summary,
/// changed`.
struct Bug {
    id: u64,
    product: String,
    component: String,
    assignee: String,
    title: String,
    changed: DateTime<Utc>,
}

/// Parses the list (CSV without a header; bzip2-compressed when the name ends in `.bz2`) and
/// returns its fixed bugs as requests, in id order.
pub fn load(path: &Path) -> Result<Vec<Request>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "bz2") {
        bzip2::read::BzDecoder::new(file).read_to_end(&mut bytes)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)?;
    }
    parse(&String::from_utf8_lossy(&bytes))
}

/// The fixed bugs of the list's text, as requests in id order.
pub fn parse(text: &str) -> Result<Vec<Request>> {
    let mut bugs = Vec::new();
    for (i, r) in super::csv::parse(text).into_iter().enumerate() {
        if r.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if r.len() < 8 {
            bail!("row {}: {} fields, expected 8", i + 1, r.len());
        }
        if r[5].trim() != "FIXED" {
            continue;
        }
        let id = r[0]
            .trim()
            .parse()
            .with_context(|| format!("row {}: bug id {:?}", i + 1, r[0]))?;
        let changed = NaiveDateTime::parse_from_str(r[7].trim(), "%Y-%m-%d %H:%M:%S")
            .with_context(|| format!("row {}: changed {:?}", i + 1, r[7]))?
            .and_utc();
        bugs.push(Bug {
            id,
            product: r[1].trim().to_string(),
            component: r[2].trim().to_string(),
            assignee: r[3].trim().to_string(),
            title: r[6].trim().to_string(),
            changed,
        });
    }
    bugs.sort_by_key(|b| b.id);
    let (Some(first), Some(last)) = (bugs.first(), bugs.last()) else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (first.id, last.id.max(first.id + 1));
    let start = bugs
        .iter()
        .map(|b| b.changed)
        .min()
        .unwrap_or(first.changed);
    let end = bugs
        .iter()
        .map(|b| b.changed)
        .max()
        .unwrap_or(first.changed);
    let span_ms = (end - start).num_milliseconds().max(1) as f64;
    Ok(bugs
        .into_iter()
        .map(|b| {
            let share = (b.id - lo) as f64 / (hi - lo) as f64;
            let at = start + chrono::Duration::milliseconds((share * span_ms) as i64);
            Request {
                sr_number: b.id.to_string(),
                first_event_at: at,
                resolved_at: Some(at),
                last_event_at: at,
                hours_to_resolve: None,
                severity: Severity::Sev3,
                product: b.component,
                country: String::new(),
                first_team: b.product,
                first_resource: String::new(),
                resolver: b.assignee.clone(),
                resource_path: vec![b.assignee],
                holds: Vec::new(),
                statuses: Vec::new(),
                title: b.title,
            }
        })
        .collect())
}

/// `goliath replay xfce`: replays the fixed bugs and prints Goliath against the product and
/// component lookup, in the given mode and roster, or with `--all` in both modes and rosters.
pub fn run(args: &ReplayArgs) -> Result<()> {
    let params = params_from_json(args.params.as_deref())?;
    let requests = load(&args.path)?;
    println!(
        "replay {}: {} fixed bugs; service = product, context = [component]; each outcome learned before the next bug; first {:.0}% tunes, the rest is held out",
        args.path.display(),
        requests.len(),
        args.tuning_share * 100.0
    );
    let fixed = ReplayArgs {
        feedback: Feedback::Immediate,
        no_on_call: true,
        no_events: true,
        context: if args.context.split(',').any(|t| t.trim() == "title") {
            "product,title".to_string()
        } else {
            "product".to_string()
        },
        every: 0,
        all: false,
        ..args.clone()
    };
    let settings = if args.all {
        let mut all = Vec::new();
        for mode in [Mode::Shadow, Mode::Assign] {
            for roster in [RosterKind::Seen, RosterKind::Open] {
                all.push(ReplayArgs {
                    mode,
                    roster,
                    ..fixed.clone()
                });
            }
        }
        all
    } else {
        vec![fixed]
    };
    print_table(&requests, &params, settings);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
10003,\"Thunar\",\"core\",\"jannis\",\"RESOLVED\",\"FIXED\",\"Crash, on \"\"copy\"\"\",\"2013-05-01 10:00:00\"
10001,\"Thunar\",\"core\",\"jannis\",\"RESOLVED\",\"FIXED\",\"Hover popup empty\",\"2013-04-29 20:24:03\"
10002,\"bugzilla.xfce.org\",\"General\",\"bjt23\",\"RESOLVED\",\"INVALID\",\"stuck\",\"2015-02-01 22:08:27\"
10010,\"Xfdesktop\",\"General\",\"eric\",\"RESOLVED\",\"FIXED\",\"icons\",\"2014-07-24 18:45:46\"
";

    #[test]
    fn fixed_bugs_become_requests_in_id_order_spread_over_the_span() {
        let r = parse(LIST).unwrap();
        let ids: Vec<&str> = r.iter().map(|q| q.sr_number.as_str()).collect();
        assert_eq!(ids, ["10001", "10003", "10010"]);
        assert_eq!(r[0].first_team, "Thunar");
        assert_eq!(r[0].product, "core");
        assert_eq!(r[1].resolver, "jannis");
        assert_eq!(r[1].title, "Crash, on \"copy\"");
        // Ids 10001..10010 over 2013-04-29 20:24:03 .. 2014-07-24 18:45:46.
        assert_eq!(
            r[0].first_event_at.to_rfc3339(),
            "2013-04-29T20:24:03+00:00"
        );
        assert_eq!(
            r[2].first_event_at.to_rfc3339(),
            "2014-07-24T18:45:46+00:00"
        );
        assert!(r[0].first_event_at < r[1].first_event_at);
    }

    #[test]
    fn title_words_are_lowercase_distinct_and_not_too_short() {
        let words =
            super::super::replay::title_tokens("Thunar: crash on COPY, crash in thunar-vfs 4.12");
        assert_eq!(words, ["thunar", "crash", "copy"]);
    }

    #[test]
    fn a_short_row_is_an_error_that_names_it() {
        let err = parse("1,\"a\",\"b\"\n").unwrap_err().to_string();
        assert!(err.contains("row 1"), "{err}");
    }

    #[test]
    fn the_compressed_list_reads_back() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("xfce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("list.csv.bz2");
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        enc.write_all(LIST.as_bytes()).unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
        let r = load(&path).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn an_owner_per_component_is_learned_as_the_lookup_learns_it() {
        // Two components of one product, each with its maintainer.
        let mut text = String::new();
        for i in 0..60 {
            let (component, who) = if i % 2 == 0 {
                ("core", "ann")
            } else {
                ("ui", "bob")
            };
            text.push_str(&format!(
                "{},\"P\",\"{component}\",\"{who}\",\"RESOLVED\",\"FIXED\",\"t\",\"2014-01-{:02} 10:00:00\"\n",
                100 + i,
                1 + i % 28
            ));
        }
        let requests = parse(&text).unwrap();
        let args = ReplayArgs {
            feedback: Feedback::Immediate,
            no_on_call: true,
            no_events: true,
            every: 0,
            ..ReplayArgs::default()
        };
        let r = super::super::replay::replay(
            &requests,
            &crate::routing::ModelParams::default(),
            &args,
            |_| {},
        );
        let h = &r.held_out;
        assert_eq!(h.lookup_top1, h.scored);
        assert_eq!(h.goliath_top1, h.scored, "{h:?}");
    }
}
