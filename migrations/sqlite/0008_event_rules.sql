-- EventBridge-style rules (schedules) and their targets. Times are epoch milliseconds.
-- `next_fire_at` is the tick the scheduler fires next (null: never, e.g. an event-pattern rule or a
-- cron whose years are past); a scheduler replica claims a due rule by setting `claimed_by` and
-- `claimed_until` (a lease), fires it, then advances `next_fire_at` and clears the claim.
create table event_rules (
    account_id text not null references accounts (account_id),
    name text not null,
    arn text not null,
    schedule_expression text,
    event_pattern text,
    state text not null check (state in ('ENABLED', 'DISABLED')),
    description text,
    role_arn text,
    event_bus_name text not null default 'default',
    next_fire_at integer,
    claimed_by text,
    claimed_until integer,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, name)
);
-- The scheduler's scan: enabled rules by due time.
create index event_rules_due on event_rules (state, next_fire_at);

create table event_rule_targets (
    account_id text not null,
    rule_name text not null,
    target_id text not null,
    arn text not null,
    input text,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, rule_name, target_id),
    foreign key (account_id, rule_name) references event_rules (account_id, name)
);
