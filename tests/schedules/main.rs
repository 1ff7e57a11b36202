//! schedules tests (see the module files).
