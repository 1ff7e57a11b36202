//! The binary as an operator uses it: `lamina serve` on a fresh data dir, then `lamina account …`.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read as _, Write as _};
            let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "lamina serve did not become healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_first_start_and_account_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let admin_port = free_port();
    let bin = env!("CARGO_BIN_EXE_lamina");
    let mut server = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--s3-listen", "127.0.0.1:0"])
        .env("LAMINA_DATA_DIR", dir.path())
        .env_remove("LAMINA_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lamina serve");
    wait_healthy(port);

    let creds = std::fs::read_to_string(dir.path().join("credentials")).expect("credentials file");
    assert!(creds.starts_with("[lamina]\naws_access_key_id = "), "{creds}");
    assert!(creds.contains("\naws_secret_access_key = "));
    for secret in ["admin-token", "master.key", "credentials"] {
        let mode = std::fs::metadata(dir.path().join(secret)).expect("secret file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{secret} must be private");
    }

    let out = Command::new(bin)
        .args(["account", "create", "--name", "team-a", "--concurrent-executions", "7"])
        .args(["--endpoint", &format!("http://127.0.0.1:{admin_port}")])
        .env("LAMINA_DATA_DIR", dir.path())
        .env_remove("LAMINA_ADMIN_TOKEN")
        .output()
        .expect("account create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON object: {stdout}");
    assert!(stdout.starts_with("{\"AccountId\":\""), "documented field order: {stdout}");
    let key: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let id = key["AccountId"].as_str().expect("AccountId");
    assert!(id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert!(key["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(key["SecretAccessKey"].as_str().is_some_and(|k| k.len() >= 40));

    // The public listener does not serve the admin API.
    let public = Command::new(bin)
        .args(["account", "list", "--endpoint", &format!("http://127.0.0.1:{port}")])
        .env("LAMINA_DATA_DIR", dir.path())
        .env_remove("LAMINA_ADMIN_TOKEN")
        .output()
        .expect("account list");
    assert!(!public.status.success(), "no admin API on the public listener");
    assert!(String::from_utf8_lossy(&public.stderr).contains("--admin-listen"), "the error says where to go");

    let wrong = Command::new(bin)
        .args(["account", "list", "--endpoint", &format!("http://127.0.0.1:{admin_port}")])
        .env("LAMINA_ADMIN_TOKEN", "not-the-token")
        .output()
        .expect("account list");
    assert!(!wrong.status.success(), "a wrong admin token is refused");

    let list = Command::new(bin)
        .args(["account", "list", "--endpoint", &format!("http://127.0.0.1:{admin_port}")])
        .env("LAMINA_DATA_DIR", dir.path())
        .env_remove("LAMINA_ADMIN_TOKEN")
        .output()
        .expect("account list");
    let accounts: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let names: Vec<&str> =
        accounts["Accounts"].as_array().expect("array").iter().filter_map(|a| a["Name"].as_str()).collect();
    assert!(names.contains(&"default") && names.contains(&"team-a"), "{names:?}");

    // SIGTERM drains and exits.
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.try_wait().expect("wait") {
            assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
