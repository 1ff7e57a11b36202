-- Event-source mappings (CreateEventSourceMapping). Times are epoch milliseconds.
-- `state` is what the API shows; `enabled` is what the user asked for, where `Creating` and
-- `Updating` settle. The poller manager settles transitional states once no poller of the mapping
-- runs any more; `Deleting` settles by removing the row with its checkpoints and leases.
create table event_source_mappings (
    uuid text primary key,
    account_id text not null references accounts (account_id),
    function_name text not null,
    -- '' for the unqualified function (a unique index treats nulls as distinct).
    qualifier text not null,
    event_source_arn text not null,
    -- The queue of an Amazon MQ (RabbitMQ) source, '' for other sources: one broker feeds a
    -- function from several queues through several mappings.
    source_queue text not null,
    state text not null check (state in ('Creating', 'Enabling', 'Enabled', 'Disabling', 'Disabled', 'Updating', 'Deleting')),
    enabled boolean not null,
    state_transition_reason text not null,
    last_processing_result text not null,
    -- The API's configuration fields (BatchSize, StartingPosition, ...) as JSON.
    document text not null,
    -- The last user change; strictly increasing per mapping, so a running poller sees it changed.
    last_modified bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index event_source_mappings_function on event_source_mappings (account_id, function_name);
create index event_source_mappings_source on event_source_mappings (account_id, event_source_arn);
-- One mapping per (function as addressed, source); a mapping being deleted no longer counts.
create unique index event_source_mappings_pair on event_source_mappings
    (account_id, function_name, qualifier, event_source_arn, source_queue) where state <> 'Deleting';
-- The poller manager's scan (every mapping not at rest in `Disabled`).
create index event_source_mappings_active on event_source_mappings (state) where state <> 'Disabled';

-- Where a poller is in each partition (a Kinesis shard; '' for a queue) of a mapping.
create table event_source_checkpoints (
    uuid text not null,
    partition text not null,
    position text not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (uuid, partition)
);

-- Leases that keep one poller per mapping (or per partition) across replicas: taken when free,
-- expired or already the owner's.
create table event_source_leases (
    lease_key text primary key,
    owner text not null,
    expires_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);
