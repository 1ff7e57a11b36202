-- Function logs as CloudWatch Logs shows them (issue 14): log groups, their streams, and events.
-- Times are epoch milliseconds. No foreign keys: ingest is the hot path and arrives after the fact
-- (a batch may name a group DeleteLogGroup just removed: it simply recreates it), and the code keeps
-- the three tables consistent inside one transaction per change, taking the group row first.
-- Names are `collate "C"` so that ordering and name cursors are bytewise, as on SQLite.
create table log_groups (
    account_id text not null,
    name text collate "C" not null,
    creation_time bigint not null,
    -- Null: no retention policy (the janitor applies its default, if any).
    retention_in_days bigint,
    -- Sum of the group's events' sizes (message bytes + 26, AWS's event size).
    stored_bytes bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (account_id, name)
);

create table log_streams (
    account_id text not null,
    log_group text collate "C" not null,
    name text collate "C" not null,
    creation_time bigint not null,
    first_event_timestamp bigint,
    last_event_timestamp bigint,
    last_ingestion_time bigint,
    stored_bytes bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (account_id, log_group, name)
);

-- Events are ordered by (event_timestamp, id); `id` is the insertion order and the eventId.
-- `ingestion_time` doubles as the row's creation time: events are never updated.
create table log_events (
    id bigint generated always as identity primary key,
    account_id text not null,
    log_group text collate "C" not null,
    log_stream text collate "C" not null,
    event_timestamp bigint not null,
    ingestion_time bigint not null,
    message text not null,
    bytes bigint not null
);
-- GetLogEvents: one stream in order.
create index log_events_stream on log_events (account_id, log_group, log_stream, event_timestamp, id);
-- FilterLogEvents and retention: one group in order.
create index log_events_group on log_events (account_id, log_group, event_timestamp, id);
-- The size cap: an account's oldest events.
create index log_events_account on log_events (account_id, event_timestamp, id);
