//! Domain enums read from and written to text columns: a value outside the enum is an error
//! when read, never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::pg::Pg;
use diesel::sql_types::Text;

use crate::models::{RoutingMode, WorkItemStatus};
use crate::routing::Severity;

impl FromSql<Text, Pg> for Severity {
    fn from_sql(bytes: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        Ok(text.parse::<Severity>()?)
    }
}

impl Queryable<Text, Pg> for Severity {
    type Row = Severity;
    fn build(row: Severity) -> deserialize::Result<Self> {
        Ok(row)
    }
}

impl FromSql<Text, Pg> for WorkItemStatus {
    fn from_sql(bytes: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        WorkItemStatus::parse(&text)
            .ok_or_else(|| format!("unknown work item status `{text}`").into())
    }
}

impl Queryable<Text, Pg> for WorkItemStatus {
    type Row = WorkItemStatus;
    fn build(row: WorkItemStatus) -> deserialize::Result<Self> {
        Ok(row)
    }
}

impl FromSql<Text, Pg> for RoutingMode {
    fn from_sql(bytes: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        RoutingMode::parse(&text).ok_or_else(|| format!("unknown routing mode `{text}`").into())
    }
}

impl Queryable<Text, Pg> for RoutingMode {
    type Row = RoutingMode;
    fn build(row: RoutingMode) -> deserialize::Result<Self> {
        Ok(row)
    }
}
