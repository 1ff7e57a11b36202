//! destinations tests (see the module files).
