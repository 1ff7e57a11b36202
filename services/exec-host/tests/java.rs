//! The Java managed runtime (`runtimes/java`, compiled into the embedded
//! `java/lamina-java-runtime.jar`) inside real sandboxes. The functions' code is compiled at test
//! time with `javac` against the runtime jar the host wrote to its runtime directory. Without a JDK
//! the tests are skipped with a message (they fail instead when `CI` is set).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use common::{TestHost, data_dir, invocation, json, write_zip};
use lamina_common::FunctionSnapshot;
use serde_json::json;

const RUNTIME: &str = "java17";

/// The handlers used below, as (path, source). `dep/` goes into `lib/dep.jar`, never at the root.
const SOURCES: &[(&str, &str)] = &[
    ("example/RequestClass.java", include_str!("../../../tests/fixtures/java/example/RequestClass.java")),
    ("example/ResponseClass.java", include_str!("../../../tests/fixtures/java/example/ResponseClass.java")),
    ("example/Hello.java", include_str!("../../../tests/fixtures/java/example/Hello.java")),
    (
        "example/Count.java",
        r#"package example;

import com.amazonaws.services.lambda.runtime.Context;

public class Count {
    // Overloads: the most parameters wins; on a tie the one ending in Context (programming-model 5.3).
    public String myHandler(int myCount) { return "wrong overload"; }
    public String myHandler(String s, Object o) { return "wrong overload"; }
    public String myHandler(int myCount, Context context) { return String.valueOf(myCount); }
}
"#,
    ),
    ("example/Upper.java", include_str!("../../../tests/fixtures/java/example/Upper.java")),
    (
        "example/MapHandler.java",
        r#"package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
import java.util.TreeSet;

public class MapHandler implements RequestHandler<Map<String, Object>, String> {
    @Override
    public String handleRequest(Map<String, Object> input, Context context) {
        return input.get("key1") + " " + new TreeSet<>(input.keySet()) + " " + input.get("n").getClass().getName();
    }
}
"#,
    ),
    (
        "example/Fail.java",
        r#"package example;

import com.amazonaws.services.lambda.runtime.Context;
import java.util.Map;

public class Fail {
    public String handler(Map<String, Object> input, Context context) {
        System.out.println("about to fail");
        throw new IllegalStateException("Name John Doe is invalid. Exception occurred...",
                new IllegalArgumentException("bad name"));
    }
}
"#,
    ),
    (
        "example/Logs.java",
        r#"package example;

import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;

public class Logs implements RequestHandler<Object, Map<String, Object>> {
    @Override
    public Map<String, Object> handleRequest(Object input, Context context) {
        LambdaLogger logger = context.getLogger();
        logger.log("logger first line\nlogger second line");
        System.out.println("stdout line");
        System.out.println("Hello \n world");
        System.err.println("stderr line");
        System.out.print("no newline at the end");
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("functionName", context.getFunctionName());
        m.put("functionVersion", context.getFunctionVersion());
        m.put("memory", context.getMemoryLimitInMB());
        m.put("remaining", context.getRemainingTimeInMillis());
        m.put("requestId", context.getAwsRequestId());
        m.put("arn", context.getInvokedFunctionArn());
        m.put("logGroup", context.getLogGroupName());
        m.put("logStream", context.getLogStreamName());
        CognitoIdentity id = context.getIdentity();
        m.put("identityId", id == null ? null : id.getIdentityId());
        m.put("identityPoolId", id == null ? null : id.getIdentityPoolId());
        ClientContext cc = context.getClientContext();
        if (cc != null) {
            m.put("installationId", cc.getClient().getInstallationId());
            m.put("appTitle", cc.getClient().getAppTitle());
            m.put("custom", cc.getCustom());
            m.put("env", cc.getEnvironment());
        }
        m.put("input", input);
        return m;
    }
}
"#,
    ),
    ("example/UsesDep.java", include_str!("../../../tests/fixtures/java/example/UsesDep.java")),
    (
        "dep/Greeter.java",
        r#"package dep;

public class Greeter {
    public static String greet(String name) { return "greetings from lib/dep.jar, " + name; }
}
"#,
    ),
    (
        "example/Counter.java",
        r#"package example;

public class Counter {
    static int count;

    public int handler(Object input) { return ++count; }
}
"#,
    ),
    (
        "example/Types.java",
        r#"package example;

import java.util.List;
import java.util.Map;

public class Types {
    public enum Color { RED, GREEN }

    public static class Item {
        public String name;
        public int qty;
    }

    public static class Input {
        public List<Item> items;
        public Map<String, Integer> counts;
        public boolean flag;
        public long big;
        public double ratio;
        public Color color;
        private List<Long> ids;
        public List<Long> getIds() { return ids; }
        public void setIds(List<Long> ids) { this.ids = ids; }
    }

    public static class Output {
        public int totalQty;
        public String firstName;
        public int countA;
        public boolean flag;
        public long big;
        public double ratio;
        public Color color;
        public List<Long> ids;
        public int[] numbers = {1, 2};
        public Object nothing;
        public boolean isValid() { return true; }
    }

    public Output handler(Input in) {
        Output o = new Output();
        for (Item i : in.items) {
            o.totalQty += i.qty;
        }
        o.firstName = in.items.get(0).name;
        o.countA = in.counts.get("a");
        o.flag = in.flag;
        o.big = in.big;
        o.ratio = in.ratio;
        o.color = in.color;
        o.ids = in.getIds();
        return o;
    }

    public void nothing(Object in) {}

    public static String alloc(int mb) {
        byte[][] blocks = new byte[mb][];
        for (int i = 0; i < mb; i++) {
            blocks[i] = new byte[1024 * 1024];
            blocks[i][i] = 1;
        }
        long sum = 0;
        for (byte[] b : blocks) {
            sum += b.length;
        }
        return "allocated " + (sum >> 20) + " MB, max heap " + (Runtime.getRuntime().maxMemory() >> 20) + " MB";
    }
}
"#,
    ),
];

/// The compiled test code: `root` holds `example/**.class`, `dep_jar` the `dep` classes.
struct Compiled {
    root: PathBuf,
    dep_jar: Vec<u8>,
}

fn jdk_tool(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name));
    let from_home = std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin").join(name));
    from_path.chain(from_home).find(|p| p.is_file())
}

/// True when the test can run; false (after saying why) when no JDK is installed. Under `CI` a
/// missing JDK fails the test.
fn have_jdk() -> bool {
    if jdk_tool("javac").is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("javac not found on PATH or in $JAVA_HOME/bin, and CI is set: the java runtime must be tested");
    }
    eprintln!("SKIPPED: javac not found on PATH or in $JAVA_HOME/bin, so the java runtime is not built or tested");
    false
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            let rel = p.strip_prefix(base).expect("under base").to_string_lossy().into_owned();
            out.push((rel, std::fs::read(&p).expect("read file")));
        }
    }
}

/// Compiles [`SOURCES`] once per test binary against the runtime jar of a started host.
fn compiled(t: &TestHost) -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let jar = data_dir(t).join("runtime/java/lamina-java-runtime.jar");
        assert!(jar.is_file(), "the host did not write {}: was the java runtime built?", jar.display());
        // Under cargo's per-target scratch directory, replaced on every run.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-handlers");
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        let mut paths = Vec::new();
        for (rel, text) in SOURCES {
            let p = src.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write source");
            paths.push(p);
        }
        let classes = dir.join("classes");
        let javac = jdk_tool("javac").expect("javac");
        let out = Command::new(javac)
            .args(["--release", "17", "-g", "-encoding", "UTF-8", "-cp"])
            .arg(&jar)
            .arg("-d")
            .arg(&classes)
            .args(&paths)
            .output()
            .expect("run javac");
        assert!(out.status.success(), "javac failed:\n{}", String::from_utf8_lossy(&out.stderr));
        // A jar is a zip; the class loader needs no manifest.
        let mut dep = Vec::new();
        files_under(&classes.join("dep"), &classes, &mut dep);
        let dep_zip = dir.join("dep.jar");
        let entries: Vec<(&str, &[u8], u32)> = dep.iter().map(|(n, b)| (n.as_str(), b.as_slice(), 0o644)).collect();
        write_zip(&dep_zip, &entries);
        Compiled { root: classes.join("example"), dep_jar: std::fs::read(&dep_zip).expect("read dep.jar") }
    })
}

/// A `java17` function whose package holds every compiled `example` class (plus `lib/dep.jar` with `with_dep`).
fn function(t: &TestHost, name: &str, handler: &str, with_dep: bool) -> FunctionSnapshot {
    let c = compiled(t);
    let base = c.root.parent().expect("classes dir");
    let mut files = Vec::new();
    files_under(&c.root, base, &mut files);
    if with_dep {
        files.push(("lib/dep.jar".to_string(), c.dep_jar.clone()));
    }
    let entries: Vec<(&str, &[u8], u32)> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice(), 0o644)).collect();
    let mut f = t.function(name, RUNTIME, &entries);
    f.handler = handler.to_string();
    f
}

async fn start() -> Option<TestHost> {
    if !have_jdk() {
        return None;
    }
    let t = TestHost::start().await;
    assert!(t.host.runtimes().contains(&RUNTIME.to_string()), "no {RUNTIME} runtime: {:?}", t.host.runtimes());
    // Debian/Ubuntu JDKs keep their configuration in /etc/java-N-openjdk (symlinked from
    // $JAVA_HOME/conf); the JVM cannot start its security framework unless sandboxes see it.
    if let Some(real) = std::fs::canonicalize("/usr/bin/java").ok().and_then(|j| {
        let home = j.parent()?.parent()?.to_path_buf();
        std::fs::canonicalize(home.join("conf/security/java.security")).ok()
    }) && real.starts_with("/etc")
    {
        eprintln!(
            "NOTE: the JDK's java.security is {}: sandboxes must see that /etc directory (isolation ETC_ENTRIES), \
             else handlers fail with \"Error loading java.security file\"",
            real.display()
        );
    }
    Some(t)
}

fn text(out: &lamina_exec_host::InvokeOutcome) -> String {
    String::from_utf8_lossy(&out.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pojo_handler_greets() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jhello", "example.Hello::myHandler", false);
    let out = t.invoke(&f, json!({"firstName": "John", "lastName": "Doe"})).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(json(&out), json!({"greetings": "Hello John, Doe."}));
    // Non-ASCII text survives both ways (the sandbox's locale may not exist; the JVM runs in UTF-8).
    let out = t.invoke(&f, json!({"firstName": "Zoë \u{1F600}", "lastName": "Ünal\n\"q\""})).await;
    assert_eq!(json(&out), json!({"greetings": "Hello Zoë \u{1F600}, Ünal\n\"q\"."}));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int_to_string_handler_and_overloads() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jcount", "example.Count::myHandler", false);
    let out = t.invoke(&f, json!(123)).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(json(&out), json!("123"));
    // The single-colon alias of the handler string.
    let f = function(&t, "jcount2", "example.Count:myHandler", false);
    assert_eq!(json(&t.invoke(&f, json!(7)).await), json!("7"));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_handler_upper_cases_bytes() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jupper", "example.Upper", false);
    let out = t.invoke(&f, json!("test")).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(&out.payload[..], b"\"TEST\"");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_handler_with_map_input() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jmap", "example.MapHandler", false);
    let out = t.invoke(&f, json!({"key3": "value3", "key2": "value2", "key1": "value1", "n": 5})).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(json(&out), json!("value1 [key1, key2, key3, n] java.lang.Integer"));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pojo_mapping_of_collections_fields_and_primitives() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jtypes", "example.Types::handler", false);
    let event = json!({
        "items": [{"name": "a", "qty": 2}, {"name": "b", "qty": 3, "extra": true}],
        "counts": {"a": 7},
        "flag": true,
        "big": 9_007_199_254_740_993_i64,
        "ratio": 0.25,
        "color": "GREEN",
        "ids": [1, 2],
        "unknown": {"ignored": []}
    });
    let out = t.invoke(&f, event).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(
        json(&out),
        json!({"totalQty": 5, "firstName": "a", "countA": 7, "flag": true, "big": 9_007_199_254_740_993_i64,
               "ratio": 0.25, "color": "GREEN", "ids": [1, 2], "numbers": [1, 2], "nothing": null, "valid": true})
    );
    let f = function(&t, "jvoid", "example.Types::nothing", false);
    let out = t.invoke(&f, json!({})).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(text(&out), "null");
    // An event that does not fit the input type is an error, not a crash.
    let f = function(&t, "jbadinput", "example.Types::handler", false);
    let out = t.invoke(&f, json!({"items": "not a list of items"})).await;
    assert!(out.function_error);
    assert_eq!(json(&out)["errorMessage"], "An error occurred during JSON parsing", "{}", text(&out));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_becomes_error_document() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jfail", "example.Fail::handler", false);
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error);
    let e = json(&out);
    assert_eq!(e["errorType"], "java.lang.IllegalStateException", "{e}");
    assert_eq!(e["errorMessage"], "Name John Doe is invalid. Exception occurred...");
    let frames = e["stackTrace"].as_array().expect("stackTrace array");
    assert_eq!(frames[0], "example.Fail.handler(Fail.java:9)", "{e}");
    assert!(frames.iter().all(|f| f.is_string() && !f.as_str().unwrap_or("").contains("lamina.runtime")), "{e}");
    assert_eq!(e["cause"]["errorType"], "java.lang.IllegalArgumentException", "{e}");
    assert_eq!(e["cause"]["errorMessage"], "bad name");
    let tail = out.log_tail.expect("tail");
    assert!(tail.contains("about to fail"), "{tail}");
    assert!(tail.contains("java.lang.IllegalStateException: Name John Doe is invalid"), "{tail}");
    assert!(tail.contains("\tat example.Fail.handler(Fail.java:9)"), "{tail}");
    // The sandbox survives a thrown exception.
    let again = t.invoke(&f, json!({})).await;
    assert!(again.function_error);
    assert!(again.init_duration_ms.is_none(), "the warm sandbox is reused after an exception");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_context_fields() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jlogs", "example.Logs", false);
    let mut inv = invocation(&f, json!({"k": [1, 2.5, "x", null, true]}));
    let request_id = inv.request_id.clone();
    inv.tail_log = true;
    let out = t.host.invoke(inv).await.expect("invoke");
    assert!(!out.function_error, "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["functionName"], "jlogs");
    assert_eq!(v["functionVersion"], "$LATEST");
    assert_eq!(v["memory"], json!(128), "memory is an int");
    let remaining = v["remaining"].as_i64().expect("remaining is a number");
    assert!(remaining > 0 && remaining <= 3000, "{remaining}");
    assert_eq!(v["requestId"], request_id.as_str());
    assert_eq!(v["arn"], f.function_arn.as_str());
    assert_eq!(v["logGroup"], "/aws/lambda/jlogs");
    assert!(v["logStream"].as_str().is_some_and(|s| s.contains("[$LATEST]")), "{v}");
    assert_eq!(v["identityId"], serde_json::Value::Null);
    assert!(v.get("installationId").is_none(), "no client context: {v}");
    assert_eq!(v["input"], json!({"k": [1, 2.5, "x", null, true]}));
    let tail = out.log_tail.expect("tail");
    assert!(tail.contains("logger first line\rlogger second line\n"), "one event per log() call: {tail:?}");
    for line in ["stdout line\n", "Hello \n", " world\n", "stderr line\n", "no newline at the end"] {
        assert!(tail.contains(line), "{line:?} missing from {tail:?}");
    }

    let mut inv = invocation(&f, json!({}));
    inv.client_context = Some(
        json!({"client": {"installation_id": "inst-1", "app_title": "App", "app_version_name": "1.0",
                          "app_version_code": "1", "app_package_name": "com.example"},
               "custom": {"foo": "bar"}, "env": {"platform": "Android"}})
        .to_string(),
    );
    inv.cognito_identity = Some(json!({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}).to_string());
    let out = t.host.invoke(inv).await.expect("invoke");
    let v = json(&out);
    assert_eq!(v["identityId"], "id-1", "{v}");
    assert_eq!(v["identityPoolId"], "pool-1");
    assert_eq!(v["installationId"], "inst-1");
    assert_eq!(v["appTitle"], "App");
    assert_eq!(v["custom"], json!({"foo": "bar"}));
    assert_eq!(v["env"], json!({"platform": "Android"}));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_jar_in_lib_is_on_the_class_path() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jdep", "example.UsesDep::handler", true);
    let out = t.invoke(&f, json!("Jane")).await;
    assert!(!out.function_error, "{}", text(&out));
    assert_eq!(json(&out), json!("greetings from lib/dep.jar, Jane"));
    // Without lib/dep.jar the class is missing at call time: an error, with the JVM's type.
    let f = function(&t, "jnodep", "example.UsesDep::handler", false);
    let out = t.invoke(&f, json!("Jane")).await;
    assert!(out.function_error);
    assert_eq!(json(&out)["errorType"], "java.lang.NoClassDefFoundError", "{}", text(&out));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_sandbox_keeps_static_state() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jcounter", "example.Counter::handler", false);
    let a = t.invoke(&f, json!({})).await;
    assert!(!a.function_error, "{}", text(&a));
    assert_eq!(json(&a), json!(1));
    assert!(a.init_duration_ms.is_some());
    let b = t.invoke(&f, json!({})).await;
    assert_eq!(json(&b), json!(2));
    assert!(b.init_duration_ms.is_none());
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_class_and_method_are_init_errors() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jmissing", "example.Missing", false);
    let out = t.invoke(&f, json!({})).await;
    assert!(out.function_error);
    let e = json(&out);
    assert_eq!(e["errorType"], "java.lang.ClassNotFoundException", "{e}");
    assert_eq!(e["errorMessage"], "Class not found: example.Missing");
    let f = function(&t, "jnomethod", "example.Hello::nope", false);
    let e = json(&t.invoke(&f, json!({})).await);
    assert_eq!(e["errorType"], "java.lang.NoSuchMethodException", "{e}");
    assert_eq!(
        e["errorMessage"],
        "No public method named nope with appropriate method signature found on class example.Hello"
    );
    // A class that is neither a RequestHandler nor has handleRequest.
    let f = function(&t, "jnoiface", "example.Hello", false);
    let e = json(&t.invoke(&f, json!({})).await);
    assert_eq!(e["errorType"], "java.lang.NoSuchMethodException", "{e}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jvm_fits_in_128_mb() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jalloc", "example.Types::alloc", false);
    assert_eq!(f.memory_mb, 128);
    let out = t.invoke(&f, json!(60)).await;
    assert!(!out.function_error, "{}", text(&out));
    let msg = json(&out);
    assert!(msg.as_str().is_some_and(|s| s.starts_with("allocated 60 MB")), "{msg}");
    assert!(out.max_memory_used_mb <= 128, "{}", out.max_memory_used_mb);
    eprintln!("128 MB function: {msg}, max memory used {} MB", out.max_memory_used_mb);
    // Past the heap: an OutOfMemoryError reported as the error, never a cgroup OOM kill.
    let out = t.invoke(&f, json!(120)).await;
    assert!(out.function_error);
    assert_eq!(json(&out)["errorType"], "java.lang.OutOfMemoryError", "{}", text(&out));
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_and_warm_start_times() {
    let Some(t) = start().await else { return };
    let f = function(&t, "jtiming", "example.Counter::handler", false);
    let start = Instant::now();
    let cold = t.invoke(&f, json!({})).await;
    let cold_wall = start.elapsed();
    assert!(!cold.function_error, "{}", text(&cold));
    let mut warm = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        let out = t.invoke(&f, json!({})).await;
        assert!(out.init_duration_ms.is_none());
        warm.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    eprintln!(
        "java17 cold invoke: wall {:.0} ms, init {:.0} ms, duration {:.1} ms, max memory {} MB; warm wall ms {:?}",
        cold_wall.as_secs_f64() * 1000.0,
        cold.init_duration_ms.unwrap_or(0.0),
        cold.duration_ms,
        cold.max_memory_used_mb,
        warm.iter().map(|w| format!("{w:.1}")).collect::<Vec<_>>()
    );
    assert!(cold_wall.as_secs() < 10, "cold start took {cold_wall:?}");
    t.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_jdk_runs_a_handler() {
    let Some(t) = start().await else { return };
    for runtime in t.host.runtimes().into_iter().filter(|r| r.starts_with("java")) {
        let mut f = function(&t, &format!("jall-{runtime}"), "example.Hello::myHandler", false);
        f.runtime = runtime.clone();
        let out = t.invoke(&f, json!({"firstName": "A", "lastName": "B"})).await;
        assert!(!out.function_error, "{runtime}: {}", text(&out));
        assert_eq!(json(&out), json!({"greetings": "Hello A, B."}), "{runtime}");
    }
    t.host.shutdown().await;
}
