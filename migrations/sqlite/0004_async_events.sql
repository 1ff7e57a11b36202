-- Accepted Event invocations until their outcome is recorded (at-least-once, same request id on retries).
create table async_events (
    request_id text primary key,
    account_id text not null,
    function_name text not null,
    qualifier text,
    payload text not null,
    attempts integer not null,
    next_attempt_at integer not null,
    lease_until integer not null,
    created_at integer not null,
    updated_at integer not null
);
create index async_events_due on async_events (next_attempt_at);
