//! Hostile network use: a function tries to reach private ranges, ports the host DNATs
//! elsewhere, unusual socket families, and to hold more connections than it may.
//! Every target is an address the test itself puts on a veth into a network namespace of its
//! own (or the host's loopback): no traffic leaves the machine.
//! Run: `cargo test -p lamina-exec-host --test hostile_network` (needs root, nftables, iproute2).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};

use common::{TestHost, json};
use lamina_common::FunctionSnapshot;
use serde_json::{Value, json};

/// The host-wide nftables table follows the last host started, so the tests of this file start
/// their hosts one at a time (cargo runs test binaries one after another).
static NETWORK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BOOTSTRAP: &str = r#"#!/usr/bin/python3 -u
import errno, http.client, json, os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
BASE = "/2018-06-01/runtime"

def call(method, path, body=None):
    c = http.client.HTTPConnection(host, int(port))
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data

def err(e):
    return errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)

def connect(h, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((h, p))
        s.sendall(b"ping")
        return s, "connected:" + s.recv(4).decode()
    except OSError as e:
        s.close()
        return None, err(e)

def handle(ev):
    a = ev["action"]
    if a == "connect":
        out = {}
        for h, p in ev["targets"]:
            s, r = connect(h, p)
            out[f"{h}:{p}"] = r
            if s:
                s.close()
        return out
    if a == "hold":
        held, out = [], {}
        for _ in range(ev["n"]):
            s, r = connect(ev["host"], ev["port"])
            out[r] = out.get(r, 0) + 1
            if s:
                held.append(s)
        for s in held:
            s.close()
        return out
    if a == "sockets":
        out = {}
        for name, fam, ty, proto in ev["sockets"]:
            try:
                socket.socket(fam, ty, proto).close()
                out[name] = "ok"
            except OSError as e:
                out[name] = err(e)
        for name, fam in [("socketpair_unix", socket.AF_UNIX), ("socketpair_vsock", 40)]:
            try:
                for s in socket.socketpair(fam):
                    s.close()
                out[name] = "ok"
            except OSError as e:
                out[name] = err(e)
        out["if_nameindex"] = sorted(n for _, n in socket.if_nameindex())
        out["getaddrinfo"] = socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4][0]
        return out
    return {"unknown": a}

while True:
    r, data = call("GET", BASE + "/invocation/next")
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    try:
        out = handle(json.loads(data))
        call("POST", BASE + "/invocation/" + rid + "/response", json.dumps(out))
    except Exception as e:
        call("POST", BASE + "/invocation/" + rid + "/error", json.dumps({"errorMessage": repr(e), "errorType": type(e).__name__}))
"#;

/// Answers "ping" with "pong" on every connection and keeps it open until the client closes.
const PONG_SERVER: &str = r#"
import socket, sys, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 0))
l.listen(512)
print(l.getsockname()[1], flush=True)
def serve(c):
    try:
        if c.recv(4) == b"ping":
            c.sendall(b"pong")
        while c.recv(64):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn nft(rules: &str) {
    let mut child =
        Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run nft");
    child.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("write rules");
    let out = child.wait_with_output().expect("nft");
    assert!(out.status.success(), "nft: {}\n{rules}", String::from_utf8_lossy(&out.stderr));
}

/// True when the host has no route for `addr` other than its default one: the test may use it.
fn unrouted(addr: Ipv4Addr) -> bool {
    let out = Command::new("ip").args(["-4", "route", "show", "match", &addr.to_string()]).output().expect("ip route");
    String::from_utf8_lossy(&out.stdout).lines().all(|l| l.starts_with("default"))
}

/// A network namespace of the test's own behind a veth pair, holding `<a>.<b>.<n>.2/24` for each
/// of the given prefixes (the host end holds `.1`), with a ping/pong server on every address.
/// Dropping it removes the namespace, the veth pair, the test's nftables table and the server.
struct TestNet {
    name: String,
    host_if: String,
    n: u8,
    port: u16,
    server: Option<Child>,
    dnat_table: Option<String>,
}

impl TestNet {
    fn create(prefixes: &[(u8, u8)]) -> TestNet {
        let n = (1..=250u8)
            .map(|_| rand::random_range(1..=250u8))
            .find(|&n| prefixes.iter().all(|&(a, b)| unrouted(Ipv4Addr::new(a, b, n, 2))))
            .expect("a free /24 for the test network");
        let tag = format!("{:x}", rand::random::<u32>() & 0xff_ffff);
        let mut t = TestNet {
            name: format!("lamina-test-{tag}"),
            host_if: format!("lmt{tag}"),
            n,
            port: 0,
            server: None,
            dnat_table: None,
        };
        ip(&["netns", "add", &t.name]);
        ip(&["link", "add", &t.host_if, "type", "veth", "peer", "name", "eth0", "netns", &t.name]);
        for &(a, b) in prefixes {
            ip(&["addr", "add", &format!("{a}.{b}.{n}.1/24"), "dev", &t.host_if]);
            ip(&["-n", &t.name, "addr", "add", &format!("{a}.{b}.{n}.2/24"), "dev", "eth0"]);
        }
        ip(&["link", "set", &t.host_if, "up"]);
        ip(&["-n", &t.name, "link", "set", "lo", "up"]);
        ip(&["-n", &t.name, "link", "set", "eth0", "up"]);
        let mut server = Command::new("ip")
            .args(["netns", "exec", &t.name, "python3", "-u", "-c", PONG_SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start pong server");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("server port");
        t.server = Some(server);
        t.port = line.trim().parse().expect("port");
        t
    }

    fn addr(&self, (a, b): (u8, u8), host: u8) -> String {
        format!("{a}.{b}.{}.{host}", self.n)
    }

    /// Installs DNAT rules in a table of the test's own, as Docker or kube-proxy would.
    fn dnat(&mut self, rules: &[String]) {
        let table = format!("lamina_test_dnat_{}", self.n);
        nft(&format!(
            "table ip {table} {{\n chain pre {{\n  type nat hook prerouting priority dstnat; policy accept;\n  {}\n }}\n}}\n",
            rules.join("\n  ")
        ));
        self.dnat_table = Some(table);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(table) = &self.dnat_table {
            let _ = Command::new("nft").args(["delete", "table", "ip", table]).status();
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// True while the host-wide table holds `ours` (a line only this test's policy has). Another
/// exec-host starting on the machine meanwhile (a concurrent test binary) replaces the table
/// with its own policy; a test seeing that retries instead of failing.
fn policy_is(ours: &str) -> bool {
    let out = Command::new("nft").args(["list", "table", "inet", "lamina"]).output().expect("nft list");
    String::from_utf8_lossy(&out.stdout).contains(ours)
}

/// Gives up after a few attempts spoiled by other exec-hosts starting on the machine.
fn retry(attempts: u32) {
    assert!(
        attempts < 3,
        "another exec-host on this machine (a concurrent test binary?) kept replacing the host-wide nftables policy"
    );
    eprintln!("another exec-host replaced the nftables policy meanwhile: retrying");
}

fn function(t: &TestHost, name: &str) -> FunctionSnapshot {
    let mut f = t.function(name, "provided.al2023", &[("bootstrap", BOOTSTRAP.as_bytes(), 0o755)]);
    f.timeout_s = 30;
    f
}

async fn call(t: &TestHost, f: &FunctionSnapshot, event: Value) -> Value {
    let out = t.invoke(f, event).await;
    assert!(!out.function_error, "{}", String::from_utf8_lossy(&out.payload));
    json(&out)
}

async fn connect(t: &TestHost, f: &FunctionSnapshot, targets: &[(String, u16)]) -> Value {
    call(t, f, json!({"action": "connect", "targets": targets})).await
}

const PRIVATE: (u8, u8) = (10, 77);
const RFC1918_172: (u8, u8) = (172, 29);
const RFC1918_192: (u8, u8) = (192, 168);
const SHARED: (u8, u8) = (100, 88);
const LINK_LOCAL: (u8, u8) = (169, 254);
const BENCHMARK: (u8, u8) = (198, 18);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ranges_are_denied_unless_allow_listed() {
    let _serial = NETWORK.lock().await;
    let ranges = [PRIVATE, RFC1918_172, RFC1918_192, SHARED, LINK_LOCAL, BENCHMARK];
    let net = TestNet::create(&ranges);
    let targets: Vec<(String, u16)> = ranges.iter().map(|&r| (net.addr(r, 2), net.port)).collect();

    // Default policy: every one of them is refused.
    let t = TestHost::start().await;
    assert_eq!(t.host.health()["isolation"]["network"]["mode"], "namespace");
    let f = function(&t, "deny");
    let v = connect(&t, &f, &targets).await;
    for (h, p) in &targets {
        assert_eq!(v[format!("{h}:{p}")], "EHOSTUNREACH", "{h} reachable by default: {v}");
    }
    t.host.shutdown().await;

    // The allow-list opens exactly its range; the host's own address in it stays closed.
    let allowed = format!("{}.{}.{}.0/24", PRIVATE.0, PRIVATE.1, net.n);
    let host_end = (net.addr(PRIVATE, 1), net.port);
    let mut attempts = 0;
    let v = loop {
        attempts += 1;
        let t = TestHost::start_with(|c| c.egress_allow = vec![allowed.clone()]).await;
        let f = function(&t, "allow");
        let v = connect(&t, &f, &[targets.clone(), vec![host_end.clone()]].concat()).await;
        t.host.shutdown().await;
        if policy_is(&allowed) {
            break v;
        }
        retry(attempts);
    };
    assert_eq!(v[format!("{}:{}", targets[0].0, net.port)], "connected:pong", "allow-listed {allowed}: {v}");
    for (h, p) in targets.iter().skip(1).chain([&host_end]) {
        assert_ne!(v[format!("{h}:{p}")], "connected:pong", "{h} reachable: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_the_host_dnats_are_unreachable() {
    let _serial = NETWORK.lock().await;
    let mut net = TestNet::create(&[PRIVATE]);
    let target = net.addr(PRIVATE, 2);
    let host_end = net.addr(PRIVATE, 1);
    // A "service IP" from TEST-NET-2, routed into the test's veth so that nothing leaves the
    // machine even if a rule did not match.
    let service_ip = format!("198.51.100.{}", net.n);
    ip(&["route", "add", &format!("{service_ip}/32"), "dev", &net.host_if]);
    // A listener on the host, reached through a DNAT to a host-local address.
    let local = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind host listener");
    let local_port = local.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in local.incoming().flatten() {
            let mut b = [0u8; 4];
            if s.read_exact(&mut b).is_ok() {
                let _ = s.write_all(b"pong");
            }
        }
    });
    let p = net.port;
    net.dnat(&[
        // kube-proxy service IP / libvirt forward: an address that is not the host's.
        format!("ip daddr {service_ip} tcp dport {p} dnat to {target}:{p}"),
        // Docker -p: a port on one of the host's own addresses, forwarded elsewhere.
        format!("ip daddr {host_end} tcp dport {} dnat to {target}:{p}", p + 1),
        // A NodePort-like forward to a listener on the host itself.
        format!("ip daddr {service_ip} tcp dport {} dnat to {host_end}:{local_port}", p + 1),
    ]);

    // The target itself is allow-listed: only the DNAT makes the difference.
    let allowed = format!("{}.{}.{}.0/24", PRIVATE.0, PRIVATE.1, net.n);
    let via = [(service_ip.clone(), p), (host_end.clone(), p + 1), (service_ip.clone(), p + 1)];
    let mut attempts = 0;
    let v = loop {
        attempts += 1;
        let t = TestHost::start_with(|c| c.egress_allow = vec![allowed.clone()]).await;
        let f = function(&t, "dnat");
        let v = connect(&t, &f, &[vec![(target.clone(), p)], via.to_vec()].concat()).await;
        t.host.shutdown().await;
        if policy_is(&allowed) {
            break v;
        }
        retry(attempts);
    };
    assert_eq!(v[format!("{target}:{p}")], "connected:pong", "{v}");
    for (h, port) in &via {
        assert_eq!(v[format!("{h}:{port}")], "EHOSTUNREACH", "{h}:{port} DNAT'd and reachable: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_families_are_limited_to_unix_inet_and_route_netlink() {
    let _serial = NETWORK.lock().await;
    let t = TestHost::start().await;
    let f = function(&t, "sockets");
    // (name, family, type, protocol); Linux numbers.
    let sockets = json!([
        ["unix", 1, 1, 0],
        ["inet", 2, 1, 0],
        ["inet_udp", 2, 2, 0],
        ["inet6", 10, 1, 0],
        ["netlink_route", 16, 3, 0],
        ["netlink_sock_diag", 16, 3, 4],
        ["netlink_audit", 16, 3, 9],
        ["netlink_uevent", 16, 3, 15],
        ["packet", 17, 3, 0],
        ["key", 15, 3, 2],
        ["alg", 38, 5, 0],
        ["vsock", 40, 1, 0],
        ["xdp", 44, 3, 0],
        ["bluetooth", 31, 1, 0],
        ["tipc", 30, 5, 0],
    ]);
    let v = call(&t, &f, json!({"action": "sockets", "sockets": sockets})).await;
    for ok in ["unix", "inet", "inet_udp", "inet6", "netlink_route", "socketpair_unix"] {
        assert_eq!(v[ok], "ok", "{ok}: {v}");
    }
    for nl in ["netlink_sock_diag", "netlink_audit", "netlink_uevent"] {
        assert_eq!(v[nl], "EPROTONOSUPPORT", "{nl}: {v}");
    }
    for denied in ["packet", "key", "alg", "vsock", "xdp", "bluetooth", "tipc", "socketpair_vsock"] {
        assert_eq!(v[denied], "EAFNOSUPPORT", "{denied}: {v}");
    }
    assert_eq!(v["if_nameindex"], json!(["eth0", "lo"]), "{v}");
    assert_eq!(v["getaddrinfo"], "127.0.0.1", "{v}");

    // Node.js lists interfaces through netlink (libuv's getifaddrs) and resolves names.
    let node = t.host.runtimes().into_iter().find(|r| r.starts_with("nodejs")).expect("a nodejs runtime");
    let code = b"const os = require('os'), dns = require('dns').promises;\n\
        exports.handler = async () => ({ifs: Object.keys(os.networkInterfaces()).sort(), \
        localhost: (await dns.lookup('localhost', {family: 4})).address});\n";
    let mut f = t.function("node-net", &node, &[("index.js", code, 0o644)]);
    f.handler = "index.handler".into();
    let v = call(&t, &f, json!({})).await;
    assert_eq!(v, json!({"ifs": ["eth0", "lo"], "localhost": "127.0.0.1"}), "{v}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_sandbox_are_capped() {
    let _serial = NETWORK.lock().await;
    let net = TestNet::create(&[PRIVATE]);
    // A host-port service for the proxy cap, holding its connections like the pong server.
    let local = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let local_port = local.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in local.incoming().flatten() {
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                if s.read_exact(&mut b[..4]).is_ok() && s.write_all(b"pong").is_ok() {
                    while s.read(&mut b).is_ok_and(|n| n > 0) {}
                }
            });
        }
    });
    let allowed = format!("{}.{}.{}.0/24", PRIVATE.0, PRIVATE.1, net.n);
    // conntrack: 20 connections out, the next 10 refused; closed connections no longer count.
    let hold = |n: u32| json!({"action": "hold", "n": n, "host": net.addr(PRIVATE, 2), "port": net.port});
    let mut attempts = 0;
    let (held, again) = loop {
        attempts += 1;
        let t = TestHost::start_with(|c| {
            c.egress_allow = vec![allowed.clone()];
            c.max_connections_per_sandbox = 20;
        })
        .await;
        let f = function(&t, "hold");
        let held = call(&t, &f, hold(30)).await;
        let again = call(&t, &f, hold(5)).await;
        t.host.shutdown().await;
        if policy_is(&allowed) && policy_is("ct count over 20") {
            break (held, again);
        }
        retry(attempts);
    };
    assert_eq!(held, json!({"connected:pong": 20, "EHOSTUNREACH": 10}), "{held}");
    assert_eq!(again, json!({"connected:pong": 5}), "{again}");

    // The host-port proxy serves at most 64 connections per sandbox (a host with the default
    // conntrack cap, so that the proxy's is the one reached).
    let t = TestHost::start_with(|c| c.allow_host_ports = local_port.to_string()).await;
    let f = function(&t, "proxy");
    let v = call(&t, &f, json!({"action": "hold", "n": 80, "host": "127.0.0.1", "port": local_port})).await;
    assert_eq!(v["connected:pong"], 64, "{v}");
    t.host.shutdown().await;
}
