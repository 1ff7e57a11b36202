//! OpenTelemetry traces across the services, read by an in-test OTLP receiver, and the services'
//! JSON logs.

mod collector;
mod invocations;
mod json_logs;
