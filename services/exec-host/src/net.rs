//! Per-sandbox network namespaces: a veth pair to the host, NAT egress through nftables, and the
//! sockets (Runtime API, host-port proxy) created inside the sandbox's namespace.
//!
//! A dedicated thread `unshare`s a new network namespace, creates the veth pair (the host end
//! `lmn<slot>`, the sandbox end `eth0` in the new namespace), addresses both ends from a /30 of
//! `sandbox_network`, and binds the Runtime API on `127.0.0.1:9001` *inside* the namespace (a
//! socket stays in the namespace it was created in). The runtime process later `setns`es into
//! the namespace through the returned fd. Host-wide nftables rules (table `inet lamina`)
//! masquerade sandbox traffic and reject what a sandbox may not reach: every address of the host
//! itself, private, shared, link-local (cloud metadata) and reserved ranges unless the operator's
//! `egress_allow` opens them, other sandboxes, and anything the host would DNAT elsewhere
//! (Docker published ports, kube-proxy service IPs). Destinations are checked before the host's
//! own DNAT rules run (prerouting, priority -150) and again after them (forward). New connections
//! per sandbox are capped with `ct count`, so one sandbox cannot fill the conntrack table. Host
//! ports on the allow-list, and Lamina's own APIs at their fixed in-sandbox ports (see
//! `endpoints`), are reached through a redirect inside the namespace to a proxy listener the host
//! serves; the proxy connects only to the allow-listed host port or the configured endpoint.
#![allow(unsafe_code)]

use std::fmt;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;

use crate::endpoints::Endpoints;

/// Port of the Runtime API inside every sandbox.
pub(crate) const RUNTIME_API_PORT: u16 = 9001;
/// Host ends of sandbox veths are named `lmn<hex slot>`; the nftables rules match the prefix.
const IF_PREFIX: &str = "lmn";
/// Destinations no sandbox reaches, whatever the operator configures ("this network",
/// loopback, multicast, reserved). The sandbox network itself is added at start.
const NEVER: &[&str] = &["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"];
/// Destinations denied unless `egress_allow` opens them: private (RFC 1918), shared address
/// space (RFC 6598: carrier NAT, many Kubernetes pod and service ranges), link-local (cloud
/// metadata at 169.254.169.254), Azure's wireserver, IETF protocol assignments, benchmarking.
pub(crate) const DENIED_BY_DEFAULT: &[&str] = &[
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "168.63.129.16/32",
];
/// Proxied host-port connections one sandbox may hold at once (each costs the host two fds).
pub(crate) const PROXY_MAX_CONNECTIONS: usize = 64;
/// Pause after a failed accept (`EMFILE`, ...): the connection stays queued, so retrying at
/// once would spin a core.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
const NFT_PATHS: &[&str] = &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"];

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/n` (the host bits are cleared).
    pub(crate) fn parse(s: &str) -> anyhow::Result<Ipv4Net> {
        let (a, p) = s.trim().split_once('/').with_context(|| format!("{s:?} is not a CIDR network (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = a.parse().with_context(|| format!("bad address in {s:?}"))?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32).with_context(|| format!("bad prefix in {s:?}"))?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Ipv4Net { addr: u32::from(addr) & mask, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// Parses `18000-18999,5000` into sorted, merged inclusive ranges.
pub(crate) fn parse_port_ranges(s: &str) -> anyhow::Result<Vec<(u16, u16)>> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let port = |x: &str| x.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let (Some(a), Some(b)) = (port(a), port(b)) else {
            anyhow::bail!("bad port or range {part:?}");
        };
        anyhow::ensure!(a <= b, "bad port range {part:?}");
        out.push((a, b));
    }
    out.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (a, b) in out {
        match merged.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged)
}

/// Host-wide sandbox networking, set up once at start.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    subnet: Ipv4Net,
    allow_ports: Vec<(u16, u16)>,
    nft: PathBuf,
    max_connections: u32,
    endpoints: Endpoints,
}

/// Where the per-sandbox proxy may connect, by the port the sandbox dialled on its `127.0.0.1`.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRoutes {
    allow: Vec<(u16, u16)>,
    endpoints: Endpoints,
}

impl ProxyRoutes {
    /// The endpoint of Lamina's API at that in-sandbox port, else the same port on the host's
    /// loopback if it is allow-listed. Never the Runtime API's port.
    fn target(&self, port: u16) -> Option<String> {
        if port == RUNTIME_API_PORT {
            return None;
        }
        if let Some(endpoint) = self.endpoints.target(port) {
            return Some(endpoint.to_owned());
        }
        self.allow.iter().any(|&(a, b)| (a..=b).contains(&port)).then(|| format!("127.0.0.1:{port}"))
    }
}

/// The network of one sandbox.
pub(crate) struct SandboxNet {
    /// The network namespace (the runtime `setns`es into it).
    pub(crate) ns: OwnedFd,
    /// Runtime API listener on 127.0.0.1:9001 inside the namespace.
    pub(crate) api: TcpListener,
    /// Listener inside the namespace that allow-listed host ports and the endpoints are redirected to.
    pub(crate) proxy: Option<TcpListener>,
    /// Name of the host end of the veth pair.
    pub(crate) host_if: String,
}

/// What the host-wide rules are built from.
struct Policy {
    subnet: Ipv4Net,
    never: Vec<Ipv4Net>,
    deny: Vec<Ipv4Net>,
    allow: Vec<Ipv4Net>,
    /// The host's DNS resolvers (port 53 stays open to them even in a denied range).
    dns: Vec<Ipv4Net>,
    max_connections: u32,
}

impl Network {
    /// Checks the tools, installs the host rules and enables forwarding. An error says why
    /// sandboxes cannot get their own network.
    pub(crate) fn setup(c: &crate::Config) -> anyhow::Result<Network> {
        let subnet = Ipv4Net::parse(&c.sandbox_network).context("sandbox_network")?;
        anyhow::ensure!((8..=28).contains(&subnet.prefix), "sandbox_network prefix must be between /8 and /28");
        let allow_ports = parse_port_ranges(&c.allow_host_ports).context("allow_host_ports")?;
        let parse_all = |list: &mut dyn Iterator<Item = &str>, what: &str| -> anyhow::Result<Vec<Ipv4Net>> {
            list.map(|n| Ipv4Net::parse(n).with_context(|| what.to_string())).collect()
        };
        let mut never = parse_all(&mut NEVER.iter().copied(), "never")?;
        never.push(subnet);
        let deny = parse_all(
            &mut DENIED_BY_DEFAULT.iter().copied().chain(c.blocked_networks.iter().map(String::as_str)),
            "blocked_networks",
        )?;
        let allow = parse_all(&mut c.egress_allow.iter().map(String::as_str), "egress_allow")?;
        let dns = host_resolvers();
        let policy = Policy { subnet, never, deny, allow, dns, max_connections: c.max_connections_per_sandbox };
        let nft = NFT_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("nft (Debian package nftables) is not installed")?;
        let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").context("read ip_forward")?;
        let mut rules = String::new();
        if forwarding.trim() == "0" {
            // Forwarding was off: keep it off for everything that is not sandbox traffic.
            rules.push_str(&format!(
                "table inet lamina_forward_guard\ndelete table inet lamina_forward_guard\n\
                 table inet lamina_forward_guard {{\n chain forward {{\n  type filter hook forward priority -20; policy accept;\n\
                 iifname != \"{IF_PREFIX}*\" oifname != \"{IF_PREFIX}*\" drop\n }}\n}}\n"
            ));
        }
        rules.push_str(&host_rules(&policy));
        run_nft(&nft, &rules).context("install nftables rules")?;
        if forwarding.trim() == "0" {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").context("enable ip_forward")?;
            tracing::info!("enabled net.ipv4.ip_forward for sandbox egress (other forwarding stays blocked)");
        }
        check_conntrack_max(c);
        let endpoints = Endpoints::from_config(c);
        Ok(Network { subnet, allow_ports, nft, max_connections: c.max_connections_per_sandbox, endpoints })
    }

    /// Where a sandbox's proxy connects.
    pub(crate) fn proxy_routes(&self) -> ProxyRoutes {
        ProxyRoutes { allow: self.allow_ports.clone(), endpoints: self.endpoints.clone() }
    }

    /// Creates a sandbox's namespace, veth pair and listeners (blocking; runs its own thread
    /// because `unshare` changes the calling thread for good).
    pub(crate) fn create_sandbox(&self) -> anyhow::Result<SandboxNet> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("lamina-netns".into())
            .spawn(move || this.create_in_new_ns())
            .context("spawn network namespace thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("network namespace thread panicked"))?
    }

    /// Does `create_sandbox`'s work on the calling thread, which stays in the new namespace.
    pub(crate) fn create_in_new_ns(&self) -> anyhow::Result<SandboxNet> {
        // Sockets keep the namespace they were created in: these two act on the host.
        let rtnl = Netlink::open().context("open netlink socket")?;
        let host_ctl = inet_socket().context("open control socket")?;
        // SAFETY: unshare(2) changes only this thread's namespaces; the thread ends after this call.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error()).context("unshare network namespace");
        }
        // SAFETY: open(2) with a static NUL-terminated path; the fd is owned below.
        let fd = unsafe { libc::open(c"/proc/thread-self/ns/net".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("open network namespace");
        }
        // SAFETY: fd was just returned by open and is owned by nobody else.
        let ns = unsafe { OwnedFd::from_raw_fd(fd) };
        let slots = 1u32 << (30 - u32::from(self.subnet.prefix));
        let mut chosen = None;
        for _ in 0..64 {
            let slot = rand::random::<u32>() % slots;
            let name = format!("{IF_PREFIX}{slot:x}");
            match rtnl.add_veth(&name, "eth0", ns.as_raw_fd()) {
                Ok(()) => {
                    chosen = Some((slot, name));
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e).context("create veth pair"),
            }
        }
        let (slot, host_if) = chosen.context("no free sandbox network slot")?;
        let base = self.subnet.addr + slot * 4;
        let (host_ip, sandbox_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let mask = Ipv4Addr::new(255, 255, 255, 252);
        let result = (|| -> anyhow::Result<SandboxNet> {
            set_addr(&host_ctl, &host_if, host_ip, mask).context("address host veth")?;
            set_up(&host_ctl, &host_if).context("bring host veth up")?;
            // No IPv6 on the sandbox's link: its only route out is the NAT'ed IPv4 one.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "1");
            let ns_ctl = inet_socket().context("open namespace control socket")?;
            set_up(&ns_ctl, "lo").context("bring lo up")?;
            set_addr(&ns_ctl, "eth0", sandbox_ip, mask).context("address sandbox veth")?;
            set_up(&ns_ctl, "eth0").context("bring sandbox veth up")?;
            add_default_route(&ns_ctl, host_ip).context("add default route")?;
            let api = TcpListener::bind((Ipv4Addr::LOCALHOST, RUNTIME_API_PORT)).context("bind runtime api")?;
            api.set_nonblocking(true)?;
            let proxy = if self.allow_ports.is_empty() && self.endpoints.is_empty() {
                None
            } else {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind host-port proxy")?;
                l.set_nonblocking(true)?;
                let port = l.local_addr()?.port();
                // Runs `nft` from this thread, so inside the sandbox's namespace.
                let ports = redirected_ports(&self.allow_ports, &self.endpoints.ports());
                run_nft(&self.nft, &sandbox_rules(&ports, port, self.max_connections))
                    .context("install host-port redirect")?;
                Some(l)
            };
            Ok(SandboxNet { ns, api, proxy, host_if: host_if.clone() })
        })();
        if result.is_err() {
            let _ = rtnl.del_link(&host_if);
        }
        result
    }
}

/// The host table. Sandbox traffic is checked twice by `sandbox_egress`: in prerouting at
/// priority -150, before any DNAT of the host (Docker, kube-proxy, libvirt all DNAT at -100), so
/// a destination is judged by the address the sandbox chose; and in forward, after DNAT, where
/// anything DNAT'd at all is refused (its real target was never checked against the policy).
/// The host itself is unreachable whatever the allow-list says. The rest is masqueraded.
fn host_rules(p: &Policy) -> String {
    let i = IF_PREFIX;
    let reject = "reject with icmpx type admin-prohibited";
    let set = |name: &str, nets: &[Ipv4Net]| {
        let elements = if nets.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", nets.iter().map(Ipv4Net::to_string).collect::<Vec<_>>().join(", "))
        };
        format!(" set {name} {{ type ipv4_addr; flags interval; auto-merge;{elements} }}\n")
    };
    let sets = [set("never4", &p.never), set("deny4", &p.deny), set("allow4", &p.allow), set("dns4", &p.dns)].concat();
    let (subnet, max) = (p.subnet, p.max_connections);
    format!(
        "table inet lamina\ndelete table inet lamina\ntable inet lamina {{\n{sets}\
         set conns4 {{ type ipv4_addr; size 65535; flags dynamic; }}\n\
         chain sandbox_egress {{\n\
           meta nfproto ipv6 {reject}\n\
           fib daddr type local {reject}\n\
           ip daddr @never4 {reject}\n\
           ip daddr @dns4 meta l4proto {{ tcp, udp }} th dport 53 return\n\
           ip daddr @allow4 return\n\
           ip daddr @deny4 {reject}\n }}\n\
         chain prerouting {{\n  type filter hook prerouting priority -150; policy accept;\n\
           iifname \"{i}*\" jump sandbox_egress\n }}\n\
         chain input {{\n  type filter hook input priority -10; policy accept;\n  iifname \"{i}*\" {reject}\n }}\n\
         chain forward {{\n  type filter hook forward priority -10; policy accept;\n\
           iifname \"{i}*\" ct status dnat {reject}\n\
           iifname \"{i}*\" jump sandbox_egress\n\
           iifname \"{i}*\" ct state new add @conns4 {{ ip saddr ct count over {max} }} {reject}\n\
           iifname \"{i}*\" accept\n  oifname \"{i}*\" ct state established,related accept\n  oifname \"{i}*\" drop\n }}\n\
         chain postrouting {{\n  type nat hook postrouting priority 100; policy accept;\n\
           ip saddr {subnet} oifname != \"{i}*\" masquerade\n }}\n}}\n"
    )
}

/// IPv4 resolvers of the host's `/etc/resolv.conf` (which sandboxes share) that are not loopback.
fn host_resolvers() -> Vec<Ipv4Net> {
    resolvers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

fn resolvers(resolv_conf: &str) -> Vec<Ipv4Net> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .map(|a| Ipv4Net { addr: u32::from(a), prefix: 32 })
        .collect()
}

/// Warns when the conntrack table cannot hold every sandbox at its connection cap.
fn check_conntrack_max(c: &crate::Config) {
    let Some(max) = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return;
    };
    // With allow_host_ports each sandbox's namespace tracks its connections too.
    let per_sandbox = u64::from(c.max_connections_per_sandbox) * if c.allow_host_ports.is_empty() { 1 } else { 2 };
    let needed = per_sandbox * c.max_sandboxes as u64;
    if max < needed {
        tracing::warn!(
            nf_conntrack_max = max,
            needed,
            "net.netfilter.nf_conntrack_max is below max_sandboxes x max_connections_per_sandbox: \
             sandboxes together can fill the conntrack table (docs/security.md, Network)"
        );
    }
}

/// The ports a sandbox's redirect catches: the allow-list and the endpoints' ports (an endpoint
/// port inside an allowed range is already covered: nftables refuses overlapping elements).
fn redirected_ports(allow: &[(u16, u16)], endpoints: &[u16]) -> Vec<(u16, u16)> {
    let mut out = allow.to_vec();
    for &p in endpoints {
        if !out.iter().any(|&(a, b)| (a..=b).contains(&p)) {
            out.push((p, p));
        }
    }
    out.sort_unstable();
    out
}

/// The sandbox's own table: connections to allow-listed ports on 127.0.0.1 go to the proxy.
/// Its rules make the kernel track connections inside the namespace, so they are capped too.
fn sandbox_rules(ports: &[(u16, u16)], proxy_port: u16, max_connections: u32) -> String {
    let set: Vec<String> =
        ports.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    format!(
        "table ip lamina {{\n chain output {{\n  type nat hook output priority -100; policy accept;\n\
         ip daddr 127.0.0.1 tcp dport != {RUNTIME_API_PORT} tcp dport {{ {} }} redirect to :{proxy_port}\n }}\n\
         chain conns {{\n  type filter hook output priority 0; policy accept;\n\
         ct state new ct count over {max_connections} reject\n }}\n}}\n",
        set.join(", ")
    )
}

fn run_nft(nft: &std::path::Path, rules: &str) -> anyhow::Result<()> {
    let mut child = std::process::Command::new(nft)
        .args(["-f", "-"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", nft.display()))?;
    child.stdin.take().context("nft stdin")?.write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "nft failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Original destination port of a connection redirected by the sandbox's nftables rule.
pub(crate) fn original_dst_port(fd: &impl AsRawFd) -> io::Result<u16> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `addr`, which we own.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u16::from_be(addr.sin_port))
}

/// Serves a sandbox's host-port proxy: each connection redirected to it inside the sandbox is
/// joined to its route's target (see [`ProxyRoutes::target`]); others are closed.
pub(crate) async fn serve_host_proxy(
    listener: tokio::net::TcpListener,
    routes: ProxyRoutes,
    cancel: tokio_util::sync::CancellationToken,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PROXY_MAX_CONNECTIONS));
    loop {
        let mut inbound = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("host-port proxy accept: {e}");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("host-port proxy connection limit reached: closing");
            continue;
        };
        let target = match original_dst_port(&inbound).map(|p| routes.target(p)) {
            Ok(Some(target)) => target,
            other => {
                tracing::debug!(?other, "host-port proxy: connection without an allowed destination");
                continue;
            }
        };
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(mut outbound) = tokio::net::TcpStream::connect(target.as_str()).await else {
                return;
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            }
        });
    }
}

/// Deletes the host end of a sandbox's veth pair (the peer goes with it).
pub(crate) fn delete_link(name: &str) -> io::Result<()> {
    Netlink::open()?.del_link(name)
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    // SAFETY: sockaddr is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_INET as libc::sa_family_t;
    // sockaddr_in layout after the family: port (2 bytes, zero here), then the address.
    for (d, s) in sa.sa_data[2..6].iter_mut().zip(ip.octets()) {
        *d = s as libc::c_char;
    }
    sa
}

fn ioctl(sock: &OwnedFd, request: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: callers pass a pointer to a live struct of the type `request` expects.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request, arg) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_addr(sock: &OwnedFd, name: &str, ip: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr(ip);
    ioctl(sock, libc::SIOCSIFADDR, (&mut req as *mut libc::ifreq).cast())?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(sock, libc::SIOCSIFNETMASK, (&mut req as *mut libc::ifreq).cast())
}

fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, (&mut req as *mut libc::ifreq).cast())?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(sock, libc::SIOCSIFFLAGS, (&mut req as *mut libc::ifreq).cast())
}

fn add_default_route(sock: &OwnedFd, gateway: Ipv4Addr) -> io::Result<()> {
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(sock, libc::SIOCADDRT, (&mut rt as *mut libc::rtentry).cast())
}

/// A NETLINK_ROUTE socket for the two link operations ioctls cannot do.
struct Netlink(OwnedFd);

const VETH_INFO_PEER: u16 = 1;

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(Netlink(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `ip link add <name> type veth peer name <peer> netns <ns_fd>`.
    fn add_veth(&self, name: &str, peer: &str, ns_fd: i32) -> io::Result<()> {
        let mut m = NlMsg::new(libc::RTM_NEWLINK, (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16);
        m.ifinfomsg();
        m.attr_str(libc::IFLA_IFNAME, name);
        let info = m.begin(libc::IFLA_LINKINFO);
        m.attr(libc::IFLA_INFO_KIND, b"veth");
        let data = m.begin(libc::IFLA_INFO_DATA);
        let p = m.begin(VETH_INFO_PEER);
        m.ifinfomsg();
        m.attr_str(libc::IFLA_IFNAME, peer);
        m.attr(libc::IFLA_NET_NS_FD, &(ns_fd as u32).to_ne_bytes());
        m.end(p);
        m.end(data);
        m.end(info);
        self.request(m)
    }

    fn del_link(&self, name: &str) -> io::Result<()> {
        let mut m = NlMsg::new(libc::RTM_DELLINK, 0);
        m.ifinfomsg();
        m.attr_str(libc::IFLA_IFNAME, name);
        self.request(m)
    }

    fn request(&self, m: NlMsg) -> io::Result<()> {
        let buf = m.finish();
        // SAFETY: send(2) from a buffer we own; the kernel is the default destination.
        if unsafe { libc::send(self.0.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut resp = [0u8; 4096];
        loop {
            // SAFETY: recv(2) into a stack buffer of the given length.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), resp.as_mut_ptr().cast(), resp.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n < 20 {
                return Err(io::Error::other("short netlink reply"));
            }
            let ty = u16::from_ne_bytes([resp[4], resp[5]]);
            if ty == libc::NLMSG_ERROR as u16 {
                let err = i32::from_ne_bytes([resp[16], resp[17], resp[18], resp[19]]);
                return if err == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-err)) };
            }
        }
    }
}

/// A netlink request under construction (header, fixed part, attributes).
struct NlMsg(Vec<u8>);

impl NlMsg {
    fn new(ty: u16, flags: u16) -> NlMsg {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&(flags | (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        NlMsg(b)
    }

    /// An all-zero `struct ifinfomsg` (AF_UNSPEC, no index: links are named by IFLA_IFNAME).
    fn ifinfomsg(&mut self) {
        self.0.extend_from_slice(&[0u8; 16]);
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.0.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    fn begin(&mut self, ty: u16) -> usize {
        let at = self.0.len();
        self.attr(ty, &[]);
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.0.len() - at) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks_and_ports() {
        assert_eq!(Ipv4Net::parse("10.234.1.7/16").expect("net").to_string(), "10.234.0.0/16");
        assert!(Ipv4Net::parse("10.0.0.0").is_err());
        assert!(Ipv4Net::parse("10.0.0.0/33").is_err());
        assert_eq!(parse_port_ranges("").expect("empty"), vec![]);
        assert_eq!(
            parse_port_ranges("18000-18999, 5000,18500-19000,5001").expect("ranges"),
            vec![(5000, 5001), (18000, 19000)]
        );
        assert!(parse_port_ranges("0").is_err());
        assert!(parse_port_ranges("9-3").is_err());
        assert!(parse_port_ranges("x").is_err());
    }

    /// Prints what a sandbox network costs (needs root and nftables):
    /// `cargo test -p lamina-exec-host --lib net::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, needs root"]
    fn measure_sandbox_network_cost() {
        for ports in ["", "18000-18999"] {
            let config = crate::Config { allow_host_ports: ports.into(), ..crate::Config::default() };
            let net = Network::setup(&config).expect("network setup");
            let mut create = Vec::new();
            let mut delete = Vec::new();
            for _ in 0..20 {
                let s = std::time::Instant::now();
                let sb = net.create_sandbox().expect("sandbox network");
                create.push(s.elapsed().as_secs_f64() * 1000.0);
                let s = std::time::Instant::now();
                delete_link(&sb.host_if).expect("delete link");
                delete.push(s.elapsed().as_secs_f64() * 1000.0);
            }
            create.sort_by(f64::total_cmp);
            delete.sort_by(f64::total_cmp);
            println!(
                "allow_host_ports={ports:?}: create median {:.2} ms (max {:.2}), delete median {:.2} ms",
                create[10], create[19], delete[10]
            );
        }
    }

    #[test]
    fn host_rules_check_the_host_before_the_allow_list() {
        let net = |s: &str| Ipv4Net::parse(s).expect("net");
        let p = Policy {
            subnet: net("10.234.0.0/16"),
            never: vec![net("127.0.0.0/8"), net("10.234.0.0/16")],
            deny: vec![net("10.0.0.0/8")],
            allow: vec![],
            dns: resolvers("# c\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fd00::1\n"),
            max_connections: 7,
        };
        assert_eq!(p.dns, vec![net("10.255.255.53/32")]);
        let r = host_rules(&p);
        let at = |needle: &str| r.find(needle).unwrap_or_else(|| panic!("{needle} missing:\n{r}"));
        assert!(r.contains("set allow4 { type ipv4_addr; flags interval; auto-merge; }"), "{r}");
        assert!(at("fib daddr type local") < at("@dns4"));
        assert!(at("@never4 reject") < at("@allow4 return"));
        assert!(at("@allow4 return") < at("@deny4 reject"));
        assert!(at("priority -150") < at("hook input"));
        assert!(at("ct status dnat") < at("iifname \"lmn*\" accept"));
        assert!(r.contains("ct count over 7"), "{r}");
    }

    #[test]
    fn endpoints_are_redirected_and_routed_before_the_allow_list() {
        assert_eq!(redirected_ports(&[(5000, 5000)], &[9000, 9002]), vec![(5000, 5000), (9000, 9000), (9002, 9002)]);
        assert_eq!(redirected_ports(&[(8000, 9500)], &[9000, 9002]), vec![(8000, 9500)]);
        let config = crate::Config {
            lambda_endpoint: Some("10.1.2.3:4000".into()),
            s3_endpoint: Some("127.0.0.1:4002".into()),
            runtimes: Default::default(),
            ..crate::Config::default()
        };
        let routes = ProxyRoutes { allow: vec![(8000, 9500)], endpoints: Endpoints::from_config(&config) };
        assert_eq!(routes.target(9000).as_deref(), Some("10.1.2.3:4000"));
        assert_eq!(routes.target(9002).as_deref(), Some("127.0.0.1:4002"));
        assert_eq!(routes.target(8080).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(routes.target(9001), None, "the Runtime API port is never proxied");
        assert_eq!(routes.target(4002), None, "an endpoint's own port is not open by itself");
    }

    #[test]
    fn sandbox_rules_exclude_the_runtime_api() {
        let r = sandbox_rules(&[(5000, 5000), (18000, 18999)], 40000, 512);
        assert!(r.contains("tcp dport != 9001 tcp dport { 5000, 18000-18999 } redirect to :40000"), "{r}");
    }
}
