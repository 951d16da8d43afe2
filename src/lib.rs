pub mod jira;
pub mod signature;
