//! `goliath replay-bpic --through-http` on a small history: the real server, signed PagerDuty
//! and Jira webhooks, and the scoring against the real resolvers.

use chrono::{Duration, TimeZone, Utc};
use goliath::lab::simulate::replay::{Hold, Mode, Request};
use goliath::lab::simulate::replay_http::replay_through_http;
use goliath::routing::Severity;

/// Two teams, each resolved by its own person; a third person takes every request in and hands
/// it to the team's resolver ten minutes later. Every request closes an hour after it opens,
/// two hours before the next opens.
fn history() -> Vec<Request> {
    history_closing_after(Duration::hours(1))
}

/// [`history`] with every request closing `close_after` after it opens.
fn history_closing_after(close_after: Duration) -> Vec<Request> {
    let start = Utc.with_ymd_and_hms(2012, 3, 1, 9, 0, 0).unwrap();
    (0..48)
        .map(|i| {
            let opened = start + Duration::hours(3 * i);
            let (team, resolver) = if i % 2 == 0 {
                ("V1", "se-Ana")
            } else {
                ("V2", "nl-Ben")
            };
            // One request in twelve closes without a resolver (PagerDuty resolves it).
            let resolver = if i % 12 == 11 { "" } else { resolver };
            Request {
                sr_number: format!("1-{i}"),
                first_event_at: opened,
                resolved_at: Some(opened + close_after),
                last_event_at: opened + close_after,
                hours_to_resolve: Some(close_after.num_minutes() as f64 / 60.0),
                severity: Severity::Sev3,
                product: format!("PROD{}", i % 3),
                country: "se".into(),
                first_team: team.into(),
                first_resource: "de-Cy".into(),
                resolver: resolver.into(),
                resource_path: vec!["de-Cy".into(), resolver.into()],
                holds: [("de-Cy", 0), (resolver, 10)]
                    .into_iter()
                    .filter(|(who, _)| !who.is_empty())
                    .map(|(who, minutes)| Hold {
                        human: who.into(),
                        from: opened + Duration::minutes(minutes),
                    })
                    .collect(),
                // Worked on, then waiting on the user for ten minutes (sent as Jira status
                // changes, which the server counts as waiting).
                statuses: [(0, "In Progress"), (20, "Wait - User"), (30, "In Progress")]
                    .into_iter()
                    .map(|(minutes, s)| (opened + Duration::minutes(minutes), s.to_string()))
                    .collect(),
                title: String::new(),
            }
        })
        .collect()
}

#[test]
fn through_http_goliath_learns_each_teams_resolver_from_jira_outcomes() {
    for mode in [Mode::Assign, Mode::Shadow] {
        learns_each_teams_resolver(mode);
    }
}

fn learns_each_teams_resolver(mode: Mode) {
    let requests = history();
    let split = replay_through_http(&requests, 0.5, mode).expect("the replay runs through HTTP");
    let all = &split.all;
    assert_eq!(all.requests, 48);
    assert_eq!(all.humans, 3, "Ana, Ben and Cy are on the roster");
    // Four requests have no resolver and are not scored.
    assert_eq!(all.scored, 44);
    assert_eq!(split.tuning.scored + split.held_out.scored, 44);
    assert_eq!(
        all.undecided, 0,
        "everyone is eligible: every incident gets an owner"
    );
    // Once each team's outcomes are in, Goliath picks its resolver, as the lookup does.
    let held = &split.held_out;
    // (Three people: a router that learned nothing would be right about a third of the time.)
    assert!(
        held.goliath_top1 + 1 >= held.scored,
        "{mode:?}, held out: {} of {} right",
        held.goliath_top1,
        held.scored
    );
    let tuning = &split.tuning;
    assert!(
        tuning.goliath_top1 + 4 >= tuning.scored,
        "{mode:?}: only each team's first few may be missed: {} of {} right",
        tuning.goliath_top1,
        tuning.scored
    );
    assert_eq!(
        held.goliath_top3, held.scored,
        "the resolver is always in the top 3"
    );
    assert_eq!(held.lookup_top1, held.scored);
    // The lookup fed the same Jira events learns them too, and every pick states a confidence.
    assert_eq!(held.events_lookup_top1, held.scored, "{mode:?}");
    let stated: usize = held.calibration.bins.iter().map(|b| b.2).sum();
    assert_eq!(stated, held.scored, "{mode:?}");
}

#[test]
fn through_http_jira_take_overs_teach_who_owns_the_work_before_anything_closes() {
    // Nothing closes before the last request comes in: only the assignee changes, sent when
    // the resolvers took the requests, can teach anything in time.
    let requests = history_closing_after(Duration::days(30));
    for mode in [Mode::Assign, Mode::Shadow] {
        let split = replay_through_http(&requests, 0.5, mode).expect("the replay runs");
        let all = &split.all;
        assert_eq!(all.scored, 44);
        assert_eq!(
            all.lookup_top1, 0,
            "{mode:?}: the lookup learns from resolves only"
        );
        // (Three people: a router that learned nothing would be right about a third of the
        // time. In assign mode every resolver piles up open issues, and the load term sends
        // some of the work elsewhere.)
        assert!(
            all.goliath_top1 * 4 >= all.scored * 3,
            "{mode:?}: {} of {} right",
            all.goliath_top1,
            all.scored
        );
        // The lookup fed the same take-overs learns from them as well.
        assert!(
            all.events_lookup_top1 * 4 >= all.scored * 3,
            "{mode:?}: {} of {}",
            all.events_lookup_top1,
            all.scored
        );
    }
}
