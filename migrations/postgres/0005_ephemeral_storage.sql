-- EphemeralStorage.Size (MB) of each function version: the size of its sandboxes' /tmp.
alter table function_versions add column ephemeral_storage bigint not null default 512;
