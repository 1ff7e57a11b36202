-- Accepted Event invocations until their outcome is recorded (at-least-once, same request id on retries).
create table async_events (
    request_id text primary key,
    account_id text not null,
    function_name text not null,
    qualifier text,
    payload text not null,
    attempts bigint not null,
    next_attempt_at bigint not null,
    lease_until bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index async_events_due on async_events (next_attempt_at);
