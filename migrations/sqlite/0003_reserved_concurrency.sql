create table function_concurrency (
    account_id text not null references accounts (account_id),
    function_name text not null,
    reserved integer not null,
    created_at integer not null,
    updated_at integer not null,
    primary key (account_id, function_name)
);
