-- Per-account share of an execution host (percent of its sandbox memory and count); null: the
-- host's default (`exec_host.account_share_percent`).
alter table accounts add column host_share_percent bigint;
-- Who holds an event's lease: a restarted worker releases the leases of its previous life.
alter table async_events add column lease_owner text not null default '';
-- Fair claiming: the oldest due event of each account.
create index async_events_account_due on async_events (account_id, next_attempt_at);
