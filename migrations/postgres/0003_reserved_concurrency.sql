create table function_concurrency (
    account_id text not null references accounts (account_id),
    function_name text not null,
    reserved bigint not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (account_id, function_name)
);
