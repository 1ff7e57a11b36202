create table aliases (
    account_id text not null references accounts (account_id),
    function_name text not null,
    alias_name text not null,
    function_version text not null,
    description text not null,
    routing_config text,
    revision_id text not null,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, function_name, alias_name)
);

-- One resource policy per (function, qualifier); qualifier '' is the unqualified ARN.
create table policies (
    account_id text not null references accounts (account_id),
    function_name text not null,
    qualifier text not null,
    statements text not null,
    revision_id text not null,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, function_name, qualifier)
);
