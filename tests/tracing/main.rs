//! OpenTelemetry traces across the services, read by an in-test OTLP receiver.
