-- W3C traceparent of the span that accepted an Event invocation (its runs join that trace).
alter table async_events add column trace_parent text;
