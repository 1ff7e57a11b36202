//! Random identifiers on the invoke path.

/// A version-4 UUID from the thread-local generator: `Uuid::new_v4` asks the kernel
/// (`getrandom(2)`) for every id, a system call per request id and per trace id.
pub fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_v4_and_distinct() {
        let a = super::random_uuid();
        let b = super::random_uuid();
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
