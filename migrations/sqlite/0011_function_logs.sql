-- Function logs as CloudWatch Logs shows them (issue 14): log groups, their streams, and events.
-- Times are epoch milliseconds. No foreign keys: ingest is the hot path and arrives after the fact
-- (a batch may name a group DeleteLogGroup just removed: it simply recreates it), and the code keeps
-- the three tables consistent inside one transaction per change, taking the group row first.
create table log_groups (
    account_id text not null,
    name text not null,
    creation_time integer not null,
    -- Null: no retention policy (the janitor applies its default, if any).
    retention_in_days integer,
    -- Sum of the group's events' sizes (message bytes + 26, AWS's event size).
    stored_bytes integer not null default 0,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, name)
);

create table log_streams (
    account_id text not null,
    log_group text not null,
    name text not null,
    creation_time integer not null,
    first_event_timestamp integer,
    last_event_timestamp integer,
    last_ingestion_time integer,
    stored_bytes integer not null default 0,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, log_group, name)
);

-- Events are ordered by (event_timestamp, id); `id` is the insertion order and the eventId
-- (autoincrement: ids are never reused, so an eventId names one event forever).
-- `ingestion_time` doubles as the row's creation time: events are never updated.
create table log_events (
    id integer primary key autoincrement,
    account_id text not null,
    log_group text not null,
    log_stream text not null,
    event_timestamp integer not null,
    ingestion_time integer not null,
    message text not null,
    bytes integer not null
);
-- GetLogEvents: one stream in order.
create index log_events_stream on log_events (account_id, log_group, log_stream, event_timestamp, id);
-- FilterLogEvents and retention: one group in order.
create index log_events_group on log_events (account_id, log_group, event_timestamp, id);
-- The size cap: an account's oldest events.
create index log_events_account on log_events (account_id, event_timestamp, id);
