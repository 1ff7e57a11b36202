create table accounts (
    account_id text primary key,
    name text not null unique,
    concurrent_executions bigint not null,
    code_storage_bytes bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table access_keys (
    access_key_id text primary key,
    account_id text not null references accounts (account_id),
    secret_enc text not null,
    created_at bigint not null,
    updated_at bigint not null
);
create index access_keys_account on access_keys (account_id);

-- One row per (function, version); '$LATEST' is the only mutable row.
create table function_versions (
    account_id text not null references accounts (account_id),
    function_name text not null,
    version text not null,
    description text not null,
    runtime text not null,
    role text not null,
    handler text not null,
    memory_size bigint not null,
    timeout bigint not null,
    environment text,
    vpc_config text,
    code_sha256 text not null,
    code_size bigint not null,
    revision_id text not null,
    last_modified bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (account_id, function_name, version)
);
create index function_versions_code on function_versions (code_sha256);

-- Never deleted: version numbers survive the function (VER-6).
create table version_counters (
    account_id text not null,
    function_name text not null,
    last_version bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (account_id, function_name)
);

create function forbid_published_version_update() returns trigger as $$
begin
    if old.version <> '$LATEST' then
        raise exception 'published function versions are immutable';
    end if;
    return new;
end;
$$ language plpgsql;

create trigger function_versions_immutable
    before update on function_versions
    for each row execute function forbid_published_version_update();
