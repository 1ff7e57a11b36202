//! The process's open-file limit: every sandbox costs the host descriptors (Runtime API listener
//! and connections, log pipes, network namespace, proxy sockets), and the usual soft limit of
//! 1024 would run out at a few dozen sandboxes (docs/security.md, "Host file descriptors").
//! `getrlimit`/`setrlimit` have no safe wrapper in `std`.

#![allow(unsafe_code)]

/// Descriptors one sandbox may cost the host at most, beyond the proxy's connections: the
/// Runtime API listener and its `runtime_api::MAX_CONNECTIONS` connections, stdout and stderr
/// pipes, the runtime's process handle, its network namespace and the host-port proxy listener.
pub(crate) const PER_SANDBOX: u64 = 1 + crate::runtime_api::MAX_CONNECTIONS as u64 + 2 + 1 + 1 + 1;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns (soft, hard) as they are now.
pub(crate) fn raise() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Logs the limit, warning when it cannot hold `max_sandboxes` with room to spare.
/// `proxied_ports`: with host ports open to sandboxes, each proxied connection costs two more.
pub(crate) fn raise_and_log(max_sandboxes: usize, proxied_ports: bool) {
    let proxy = if proxied_ports { 2 * crate::net::PROXY_MAX_CONNECTIONS as u64 } else { 0 };
    // Twice the sandboxes' own need: the gRPC/API servers, the database and spares need theirs.
    let want = 2 * (PER_SANDBOX + proxy) * max_sandboxes as u64 + 1024;
    match raise() {
        Ok((soft, hard)) if soft < want => tracing::warn!(
            soft,
            hard,
            want,
            "open-file limit is low for exec_host.max_sandboxes: raise the hard RLIMIT_NOFILE (LimitNOFILE=) to at least {want}"
        ),
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit"),
        Err(e) => tracing::warn!("raise open-file limit: {e}"),
    }
}
