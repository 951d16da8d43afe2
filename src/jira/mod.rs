//! Everything that speaks Jira.
//!
//! * [`client`]: the outbound REST client ([`JiraApi`], [`HttpJiraClient`]) for Jira Cloud (REST v3,
//!   Atlassian Document Format descriptions, users by `accountId`) and Data Center (REST v2,
//!   wiki-markup descriptions, users by `name`).
//! * [`adf`]: renders an [`IssueDescription`] as ADF (Cloud) or wiki markup (Data Center).
//! * [`webhook`]: parses inbound `jira:issue_*` webhooks (Cloud and Server/DC) into
//!   [`JiraWebhook`] and checks `X-Hub-Signature`.
//! * [`sim`]: a stand-in Jira server speaking the same REST and webhook formats, which also plays
//!   the people working the issues (resolve or hand off) and sends signed webhooks back.
//!
//! Nothing here depends on actix-web except the simulator, which is an HTTP server.

pub mod adf;
pub mod client;
mod resolve;
pub mod sim;
pub mod webhook;

#[cfg(test)]
pub(crate) mod testutil;
mod util;

pub use client::{
    HttpJiraClient, InvalidJiraConfig, IssueDescription, IssueRef, JiraApi, JiraAuth,
    JiraConnection, JiraError, JiraFlavor, NewIssue, SeverityChange, Transition, SEVERITY_LABELS,
};
pub use sim::{
    run_standalone, Fault, JiraSim, JiraSimArgs, JiraSimHandle, SimConfig, SimFaults, SimHuman,
    SimIssueView, SimSkill,
};
pub use webhook::{
    parse_webhook, verify_signature, IssueChange, JiraUser, JiraWebhook, WebhookParseError,
};
