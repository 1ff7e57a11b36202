//! The two places events can live: the metadata SQL database or Redis.

pub(crate) mod redis;
pub(crate) mod sql;
