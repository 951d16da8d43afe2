// Diesel table definitions, matching `migrations/` (regenerate with `diesel print-schema`).

diesel::table! {
    humans (id) {
        id -> Text,
        display_name -> Text,
        email -> Text,
        jira_account_id -> Text,
        pagerduty_user_id -> Nullable<Text>,
        services -> Array<Text>,
        max_active -> Nullable<Int4>,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    work_items (id) {
        id -> Text,
        #[sql_name = "type"]
        item_type -> Text,
        service -> Text,
        severity -> Text,
        title -> Text,
        description -> Nullable<Text>,
        status -> Text,
        origin_system -> Text,
        pagerduty_incident_id -> Nullable<Text>,
        raw_payload -> Jsonb,
        created_at -> Timestamptz,
        received_at -> Timestamptz,
        assignee_id -> Nullable<Text>,
        undecided_reason -> Nullable<Text>,
        jira_key -> Nullable<Text>,
        jira_issue_id -> Nullable<Text>,
        resolved_at -> Nullable<Timestamptz>,
        context -> Array<Text>,
        pagerduty_status -> Text,
        pagerduty_assignees -> Array<Text>,
        pagerduty_event_at -> Nullable<Timestamptz>,
        escalate_at -> Nullable<Timestamptz>,
        routing_mode -> Text,
        taken_by -> Nullable<Text>,
        waiting -> Bool,
    }
}

diesel::table! {
    model_params (id) {
        id -> Text,
        params -> Json,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    open_loads (human_id, slot) {
        human_id -> Text,
        open_items -> Int4,
        slot -> Int2,
    }
}

diesel::table! {
    human_states (scope, key, human_id) {
        human_id -> Text,
        scope -> Text,
        key -> Text,
        state -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    term_weights (only_row) {
        only_row -> Bool,
        weights -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (source, delivery_id) {
        source -> Text,
        delivery_id -> Text,
        event_type -> Text,
        work_item_id -> Nullable<Text>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    decisions (work_item_id) {
        work_item_id -> Text,
        primary_human_id -> Nullable<Text>,
        backup_ids -> Array<Text>,
        confidence -> Float8,
        explanation -> Text,
        undecided_reason -> Nullable<Text>,
        ranking -> Json,
        excluded -> Json,
        inputs -> Json,
        model_version -> Text,
        decided_at -> Timestamptz,
    }
}

diesel::table! {
    outcomes (event_id) {
        event_id -> Text,
        work_item_id -> Text,
        kind -> Text,
        human_id -> Nullable<Text>,
        to_human_id -> Nullable<Text>,
        occurred_at -> Timestamptz,
        resolve_seconds -> Nullable<Float8>,
        detail -> Jsonb,
        recorded_at -> Timestamptz,
    }
}

diesel::table! {
    skill_stats (service, human_id, severity) {
        human_id -> Text,
        service -> Text,
        severity -> Text,
        state -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    work_item_events (id) {
        id -> Int8,
        work_item_id -> Text,
        kind -> Text,
        detail -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        run_at -> Timestamptz,
        locked_by -> Nullable<Text>,
        locked_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
        dedup_key -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        priority -> Int2,
    }
}

diesel::joinable!(decisions -> work_items (work_item_id));
diesel::joinable!(outcomes -> work_items (work_item_id));
diesel::joinable!(work_item_events -> work_items (work_item_id));
diesel::joinable!(webhook_deliveries -> work_items (work_item_id));
diesel::joinable!(work_items -> humans (assignee_id));

diesel::allow_tables_to_appear_in_same_query!(
    humans,
    work_items,
    webhook_deliveries,
    decisions,
    outcomes,
    skill_stats,
    human_states,
    open_loads,
    work_item_events,
    jobs,
    model_params,
    term_weights,
);
