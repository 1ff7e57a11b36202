-- CloudWatch metrics of namespace AWS/Lambda, one row per key and minute (epoch seconds, a multiple
-- of 60): the samples' count, sum, minimum and maximum, which is all the five statistics need.
-- Ingest upserts (counts and sums add up, min/max widen); queries aggregate whole minutes into periods.
-- An empty function_name is the account-wide ConcurrentExecutions row; an empty resource or
-- executed_version marks the per-function and per-resource ConcurrentExecutions rows.
-- No foreign key to accounts and no created_at/updated_at: rows are written hundreds at a time on
-- every flush of every producer, the minute is their time, and pruning (15 days) removes them.
create table function_metrics (
    account_id text not null,
    function_name text not null,
    resource text not null,
    executed_version text not null,
    metric text not null,
    minute integer not null,
    sample_count integer not null,
    sum_value real not null,
    min_value real not null,
    max_value real not null,
    primary key (account_id, function_name, resource, executed_version, metric, minute)
) without rowid;
-- Queries: one metric of one function (or of the account) over a time range.
create index function_metrics_series on function_metrics (account_id, metric, function_name, minute);
-- Pruning: every account's old minutes.
create index function_metrics_minute on function_metrics (minute);

-- The keys that have data and their latest minute, so that ListMetrics reads one row per key
-- instead of every stored minute.
create table function_metric_keys (
    account_id text not null,
    function_name text not null,
    resource text not null,
    executed_version text not null,
    metric text not null,
    last_minute integer not null,
    primary key (account_id, function_name, resource, executed_version, metric)
) without rowid;
