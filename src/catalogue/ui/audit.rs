//! The audit page: the log for auditors, and for staff who retrieved the calls they took
//! part in.

use super::{UserView, day_ms, not_allowed, opt, page};
use crate::catalogue::App;
use crate::catalogue::audit::AuditQuery;
use crate::catalogue::error::fail;
use crate::catalogue::people::Role;
use crate::catalogue::signed_in::{Page, SignedIn};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

pub struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    call: String,
    purpose: String,
    reference: String,
    /// What was done, as a line (filters searched, the user added, numbers added and removed,
    /// the address a sign-in came from).
    detail: String,
}

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub call_id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    user: Option<UserView>,
    f: AuditFilter,
    actions: &'static [(&'static str, &'static str)],
    staff: bool,
    verified: Option<(bool, String)>,
    records: Vec<AuditRow>,
}

pub async fn audit(
    State(app): State<App>,
    SignedIn(who, _): SignedIn<Page>,
    Query(f): Query<AuditFilter>,
) -> Response {
    let mut q = AuditQuery {
        limit: 200,
        actor: opt(&f.actor),
        action: opt(&f.action),
        call_id: opt(&f.call_id),
        from_ms: day_ms(&app.zone, &f.from),
        to_ms: day_ms(&app.zone, &f.to),
        ..Default::default()
    };
    let verified = match who.role {
        Role::Auditor => match crate::catalogue::audit_heads::verify(
            &app.store,
            &app.config.audit.heads_file,
            &app.keys,
        )
        .await
        {
            Ok(v) => Some(match v.first_broken {
                None => (
                    true,
                    format!("Hash chain verified: {} records intact.", v.records),
                ),
                Some((seq, why)) => (false, format!("Hash chain BROKEN at record {seq}: {why}.")),
            }),
            Err(e) => return fail(e),
        },
        Role::Staff => match &who.extension {
            Some(ext) => {
                q = AuditQuery {
                    limit: 200,
                    party: Some(ext.clone()),
                    action: Some("retrieve".into()),
                    ..Default::default()
                };
                None
            }
            None => return not_allowed(&who),
        },
        _ => return not_allowed(&who),
    };
    let records = match app.store.audit_list(&q).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    page(&AuditPage {
        user: Some(UserView::of(&who)),
        f,
        actions: crate::catalogue::audit::ACTIONS,
        staff: who.role == Role::Staff,
        verified,
        records: records
            .into_iter()
            .map(|r| AuditRow {
                seq: r.seq,
                at: app.zone.when(r.at_ms),
                actor: r.actor,
                action: crate::catalogue::audit::action_label(&r.action).to_owned(),
                call: r.call_id.unwrap_or_default(),
                purpose: r
                    .purpose
                    .map(|p| {
                        crate::catalogue::listen::PURPOSES
                            .iter()
                            .find(|(k, _)| *k == p)
                            .map_or(p.clone(), |(_, label)| (*label).to_owned())
                    })
                    .unwrap_or_default(),
                reference: r.reference.unwrap_or_default(),
                detail: crate::catalogue::audit::detail_text(&r.detail),
            })
            .collect(),
    })
}

// The DPO's pages: actions on a call, subject access and training agreements.
