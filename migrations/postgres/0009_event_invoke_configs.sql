-- Async invocation settings (PutFunctionEventInvokeConfig) of a function, version or alias; the
-- unqualified function is stored as '$LATEST', which is how AWS reports and applies it. Null
-- settings are unset (Lambda's defaults apply: 2 retries, 6 hours).
create table function_event_invoke_configs (
    account_id text not null,
    function_name text not null,
    qualifier text not null,
    maximum_retry_attempts bigint,
    maximum_event_age_in_seconds bigint,
    on_success text,
    on_failure text,
    -- Epoch milliseconds.
    last_modified bigint not null,
    primary key (account_id, function_name, qualifier)
);

-- DeadLetterConfig.TargetArn of each version (published versions keep the one they were published with).
alter table function_versions add column dead_letter_arn text;
