//! mappings tests (see the module files).
