//! Webhook deliveries are kept to recognise a redelivery (PagerDuty retries one for up to
//! 48 hours, Jira for less), then deleted: they are the intake's fastest-growing table, one
//! row per webhook against one work item per incident.
//!
//! The table has no index on its time, and gets none: every webhook would pay to maintain it.
//! A pass sweeps the table instead, a range of pages per piece, by physical position (a TID
//! range scan reads just those pages); rows freed by one pass are reused by new ones, so the
//! sweep, not the order of the pages, finds what is old.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double};

use crate::jobs::{describe_age, Expiry};

pub use crate::config::MIN_DELIVERY_RETENTION_DAYS;

/// Pages swept per piece: 18,000-25,000 deliveries, a few milliseconds when nothing in them is
/// old, some tens of milliseconds when everything is.
pub const PAGES_PER_PIECE: i64 = 256;

/// Deliveries received more than `age` ago go.
#[derive(Debug)]
pub struct OldDeliveries {
    pub age: Duration,
    pub pages_per_piece: i64,
}

impl OldDeliveries {
    pub fn new(age: Duration) -> OldDeliveries {
        OldDeliveries {
            age,
            pages_per_piece: PAGES_PER_PIECE,
        }
    }
}

impl Expiry for OldDeliveries {
    fn what(&self) -> String {
        format!("webhook deliveries older than {}", describe_age(self.age))
    }

    fn delete_piece(
        &self,
        conn: &mut PgConnection,
        first_page: i64,
    ) -> QueryResult<(usize, Option<i64>)> {
        #[derive(QueryableByName)]
        struct Swept {
            #[diesel(sql_type = BigInt)]
            deleted: i64,
            #[diesel(sql_type = BigInt)]
            pages: i64,
        }
        let end = first_page + self.pages_per_piece.max(1);
        let swept: Swept = diesel::sql_query(
            "WITH gone AS ( \
                 DELETE FROM webhook_deliveries \
                  WHERE ctid >= format('(%s,0)', $1::bigint)::tid \
                    AND ctid < format('(%s,0)', $2::bigint)::tid \
                    AND received_at < now() - make_interval(secs => $3) \
                 RETURNING 1) \
             SELECT (SELECT count(*) FROM gone) AS deleted, \
                    pg_relation_size('webhook_deliveries') \
                        / current_setting('block_size')::bigint AS pages",
        )
        .bind::<BigInt, _>(first_page)
        .bind::<BigInt, _>(end)
        .bind::<Double, _>(self.age.as_secs_f64())
        .get_result(conn)?;
        Ok((swept.deleted as usize, (end < swept.pages).then_some(end)))
    }
}
