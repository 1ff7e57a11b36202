//! The Java runtime (`java17`, `runtimes/java`, docs/runtimes-java.md) through the AWS SDK: POJO,
//! stream and `RequestHandler` handlers, exceptions, logging, the context object, `lib/*.jar`
//! dependencies, warm reuse and init errors (programming-model §2-§6).
//!
//! The handlers are compiled at test time with `javac --release 17` against the runtime jar the
//! server wrote to `<data-dir>/exec-host/runtime/java/` (the API jar users compile against) and
//! packaged as a zip of classes or, for one function, as a jar made by the JDK's `jar` tool. Without a
//! JDK the tests are skipped with a message; they fail instead when `CI` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lamina_tests::zip_of;
use serde_json::{Value, json};

use crate::{Fixture, assert_platform_lines, create, invoke, log_messages};

const RUNTIME: &str = "java17";

/// The handlers, as (path, source). `dep/` is packaged only inside `lib/dep.jar`.
const SOURCES: &[(&str, &str)] = &[
    ("example/RequestClass.java", include_str!("../fixtures/java/example/RequestClass.java")),
    ("example/ResponseClass.java", include_str!("../fixtures/java/example/ResponseClass.java")),
    ("example/Hello.java", include_str!("../fixtures/java/example/Hello.java")),
    ("example/Upper.java", include_str!("../fixtures/java/example/Upper.java")),
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
        Object nested = input.get("nested");
        return input.get("key1") + " " + new TreeSet<>(input.keySet()) + " " + input.get("n").getClass().getName()
                + " " + nested.getClass().getSimpleName() + " " + nested;
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
        return check(String.valueOf(input.get("name")));
    }

    static String check(String name) {
        throw new IllegalStateException("Name " + name + " is invalid. Exception occurred...",
                new IllegalArgumentException("bad name"));
    }
}
"#,
    ),
    (
        "example/Probe.java",
        r#"package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;

public class Probe implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    @Override
    public Map<String, Object> handleRequest(Map<String, Object> input, Context context) {
        LambdaLogger logger = context.getLogger();
        System.out.println("stdout says " + input.get("word"));
        System.err.println("stderr says " + input.get("word"));
        logger.log("logger says " + input.get("word"));
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("functionName", context.getFunctionName());
        m.put("functionVersion", context.getFunctionVersion());
        m.put("memoryLimitInMB", context.getMemoryLimitInMB());
        m.put("remainingTimeInMillis", context.getRemainingTimeInMillis());
        m.put("awsRequestId", context.getAwsRequestId());
        m.put("logGroupName", context.getLogGroupName());
        m.put("logStreamName", context.getLogStreamName());
        m.put("invokedFunctionArn", context.getInvokedFunctionArn());
        m.put("maxHeapMB", Runtime.getRuntime().maxMemory() >> 20);
        return m;
    }
}
"#,
    ),
    ("example/UsesDep.java", include_str!("../fixtures/java/example/UsesDep.java")),
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

import com.amazonaws.services.lambda.runtime.Context;

public class Counter {
    static int count;
    static final long LOADED = System.nanoTime();

    public String handler(Object input, Context context) {
        count++;
        System.out.println("invocation " + count);
        return count + " " + LOADED;
    }
}
"#,
    ),
];

fn jdk_tool(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name));
    let from_home = std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin").join(name));
    from_path.chain(from_home).find(|p| p.is_file())
}

/// True when the tests can run; false (after saying why) without a JDK. Under `CI` a missing JDK fails.
fn have_jdk() -> bool {
    if jdk_tool("javac").is_some() && jdk_tool("jar").is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("javac/jar not found on PATH or in $JAVA_HOME/bin, and CI is set: the java17 runtime must be tested");
    }
    eprintln!("SKIPPED: javac/jar not found on PATH or in $JAVA_HOME/bin, so the java17 runtime is not tested");
    false
}

/// A server (with a default tenant) when a JDK is available.
async fn start() -> Option<Fixture> {
    if !have_jdk() {
        return None;
    }
    Some(Fixture::start().await)
}

/// The compiled handlers: `example/Hello.class` etc. and their bytes.
struct Compiled {
    classes: BTreeMap<String, Vec<u8>>,
}

/// Every file below `dir`, by its `/`-separated path relative to `base`.
fn files_under(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            let rel = p.strip_prefix(base).expect("under base").to_string_lossy().replace('\\', "/");
            out.insert(rel, std::fs::read(&p).expect("read file"));
        }
    }
}

/// Compiles [`SOURCES`] once per test binary against the runtime jar of a started server, like a
/// user following docs/runtimes-java.md.
fn compiled(fx: &Fixture) -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let jar = fx.env.exec_host_dir().join("runtime/java/lamina-java-runtime.jar");
        assert!(jar.is_file(), "the server did not write {}: was the java runtime built?", jar.display());
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        let mut paths = Vec::new();
        for (rel, text) in SOURCES {
            let p = src.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write source");
            paths.push(p);
        }
        let out_dir = dir.path().join("classes");
        let out = Command::new(jdk_tool("javac").expect("javac"))
            .args(["--release", "17", "-g", "-encoding", "UTF-8", "-cp"])
            .arg(&jar)
            .arg("-d")
            .arg(&out_dir)
            .args(&paths)
            .output()
            .expect("run javac");
        assert!(out.status.success(), "javac failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut classes = BTreeMap::new();
        files_under(&out_dir, &out_dir, &mut classes);
        Compiled { classes }
    })
}

impl Compiled {
    /// `(path in the package, bytes)` of the compiled classes `names` (e.g. `example/Hello`, without
    /// `.class`), each with its nested classes.
    fn classes(&self, names: &[&str]) -> Vec<(&str, &[u8])> {
        let mut out = Vec::new();
        for name in names {
            let before = out.len();
            out.extend(
                self.classes
                    .iter()
                    .filter(|(path, _)| *path == &format!("{name}.class") || path.starts_with(&format!("{name}$")))
                    .map(|(path, bytes)| (path.as_str(), bytes.as_slice())),
            );
            assert!(out.len() > before, "{name} was not compiled");
        }
        out
    }

    /// A plain zip holding the classes `names` and any `extra` entries (e.g. `lib/dep.jar`).
    fn zip(&self, names: &[&str], extra: &[(&str, &[u8])]) -> Vec<u8> {
        let mut entries = self.classes(names);
        entries.extend_from_slice(extra);
        zip_of(&entries)
    }

    /// A jar made with the JDK's `jar` tool (with its `META-INF/MANIFEST.MF`) of the classes `names`.
    fn jar(&self, names: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("classes");
        let path = dir.path().join("function.jar");
        let mut cmd = Command::new(jdk_tool("jar").expect("jar"));
        cmd.arg("--create").arg("--file").arg(&path);
        for (rel, bytes) in self.classes(names) {
            let file = root.join(rel);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, bytes).expect("write class");
            cmd.arg("-C").arg(&root).arg(rel);
        }
        let out = cmd.output().expect("run jar");
        assert!(out.status.success(), "jar failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(&path).expect("read jar")
    }
}

/// Java functions get room for a JVM cold start on a busy test host.
const TIMEOUT: i32 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_pojo_stream_and_map_handlers() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);

    // The guide's POJO example, as a plain zip of classes.
    let hello = code.zip(&["example/Hello", "example/RequestClass", "example/ResponseClass"], &[]);
    let created = create(c, "jhello", RUNTIME, "example.Hello::myHandler", hello)
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create jhello");
    assert_eq!(created.runtime().map(|r| r.as_str()), Some(RUNTIME));
    let greeted = invoke(c, "jhello", &json!({"firstName": "John", "lastName": "Doe"})).await;
    assert_eq!(greeted.status, 200);
    assert_eq!(greeted.ok(), json!({"greetings": "Hello John, Doe."}));
    assert_eq!(greeted.executed_version.as_deref(), Some("$LATEST"));
    assert!(assert_platform_lines(&greeted.log, &greeted.request_id, 256).contains("\tInit Duration: "));
    let again = invoke(c, "jhello", &json!({"firstName": "Zoë", "lastName": "Ünal"})).await;
    assert_eq!(again.ok(), json!({"greetings": "Hello Zoë, Ünal."}), "UTF-8 both ways");

    // A RequestStreamHandler uploaded as a jar (the whole package), named by its class only.
    let upper = code.jar(&["example/Upper"]);
    assert_eq!(&upper[..2], b"PK", "a jar is a zip");
    create(c, "jupper", RUNTIME, "example.Upper", upper)
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create jupper");
    let out = invoke(c, "jupper", &json!("test")).await;
    assert_eq!(out.function_error, None, "{}\n{}", out.body_text(), out.log);
    assert_eq!(out.body_text(), r#""TEST""#, "a stream handler answers exactly the bytes it wrote");
    let big = "abc".repeat(100_000);
    let out = invoke(c, "jupper", &json!(big)).await;
    assert_eq!(out.ok(), json!(big.to_uppercase()), "300 KB through the stream handler");

    // RequestHandler<Map<String, Object>, String>: JSON objects become maps, the String result a JSON string.
    create(c, "jmap", RUNTIME, "example.MapHandler", code.zip(&["example/MapHandler"], &[]))
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create jmap");
    let event = json!({"key3": "value3", "key2": "value2", "key1": "value1", "n": 5, "nested": {"a": [1, "b"]}});
    let out = invoke(c, "jmap", &event).await;
    assert_eq!(out.ok(), json!("value1 [key1, key2, key3, n, nested] java.lang.Integer LinkedHashMap {a=[1, b]}"));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_exception_is_an_unhandled_error() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);
    create(c, "jfail", RUNTIME, "example.Fail::handler", code.zip(&["example/Fail"], &[]))
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");
    let failed = invoke(c, "jfail", &json!({"name": "John Doe"})).await;
    let e = failed.unhandled();
    assert_eq!(e["errorType"], "java.lang.IllegalStateException", "the fully qualified class: {e}");
    assert_eq!(e["errorMessage"], "Name John Doe is invalid. Exception occurred...");
    let frames: Vec<&str> =
        e["stackTrace"].as_array().expect("stackTrace array").iter().map(|f| f.as_str().expect("frame")).collect();
    assert_eq!(frames.first().copied(), Some("example.Fail.check(Fail.java:13)"), "{e}");
    assert!(frames.iter().any(|f| f.starts_with("example.Fail.handler(Fail.java:")), "{e}");
    assert!(frames.iter().all(|f| !f.contains("lamina.runtime")), "the runtime's own frames are left out: {e}");
    assert_eq!(e["cause"]["errorType"], "java.lang.IllegalArgumentException", "{e}");
    assert_eq!(e["cause"]["errorMessage"], "bad name");

    let report = assert_platform_lines(&failed.log, &failed.request_id, 256);
    assert!(report.contains("\tInit Duration: "), "{report}");
    assert!(failed.log.contains("about to fail\n"), "{}", failed.log);
    assert!(failed.log.contains("java.lang.IllegalStateException: Name John Doe is invalid"), "{}", failed.log);
    assert!(failed.log.contains("\tat example.Fail.check(Fail.java:13)"), "{}", failed.log);

    // The JVM survives a thrown exception: the next call is warm.
    let again = invoke(c, "jfail", &json!({"name": "Jane"})).await;
    assert_eq!(again.unhandled()["errorMessage"], "Name Jane is invalid. Exception occurred...");
    assert!(!assert_platform_lines(&again.log, &again.request_id, 256).contains("Init Duration"), "{}", again.log);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_logs_and_context() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);
    create(c, "jprobe", RUNTIME, "example.Probe", code.zip(&["example/Probe"], &[]))
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");

    let out = invoke(c, "jprobe", &json!({"word": "hi"})).await;
    let got = out.ok();
    assert_eq!(got["functionName"], "jprobe");
    assert_eq!(got["functionVersion"], "$LATEST");
    assert_eq!(got["memoryLimitInMB"], json!(256), "getMemoryLimitInMB() is an int: {got}");
    let remaining = got["remainingTimeInMillis"].as_i64().expect("remaining is a number");
    assert!(remaining > 0 && remaining <= i64::from(TIMEOUT) * 1000, "remaining {remaining} ms");
    assert_eq!(got["awsRequestId"], out.request_id.as_str(), "the same id as x-amzn-RequestId");
    assert_eq!(got["logGroupName"], "/aws/lambda/jprobe");
    let stream = got["logStreamName"].as_str().expect("log stream");
    let stream_re = regex::Regex::new(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$").expect("re");
    assert!(stream_re.is_match(stream), "log stream name {stream}");
    assert_eq!(got["invokedFunctionArn"], fx.arn("jprobe"), "a bare name is reported as the unqualified ARN");
    let heap = got["maxHeapMB"].as_i64().expect("heap");
    assert!(heap < 256, "the heap is sized from the function's memory, not the host's: {heap} MB");

    // stdout, stderr and LambdaLogger lines between START and END, then REPORT.
    let report = assert_platform_lines(&out.log, &out.request_id, 256);
    assert!(report.contains("\tInit Duration: "), "{report}");
    let start = out.log.find("START RequestId").expect("START");
    let end = out.log.find("END RequestId").expect("END");
    for line in ["stdout says hi\n", "stderr says hi\n", "logger says hi"] {
        let at = out.log.find(line).unwrap_or_else(|| panic!("{line:?} missing from the tail:\n{}", out.log));
        assert!(start < at && at < end, "{line:?} between START and END:\n{}", out.log);
    }
    let by_arn = invoke(c, &fx.arn("jprobe"), &json!({"word": "again"})).await;
    let again = by_arn.ok();
    assert_eq!(again["awsRequestId"], by_arn.request_id.as_str());
    assert_ne!(again["awsRequestId"], got["awsRequestId"], "a new id per invocation");
    assert_eq!(again["invokedFunctionArn"], fx.arn("jprobe"));
    assert_eq!(again["logStreamName"], got["logStreamName"], "the same sandbox, the same stream");
    assert!(by_arn.log.contains("logger says again") && !by_arn.log.contains("says hi"), "{}", by_arn.log);

    // The same lines reach the function's log group.
    let messages = log_messages(&fx.env, &fx.tenant, "jprobe").await;
    for line in ["stdout says hi", "stderr says hi", "logger says hi", "logger says again"] {
        assert!(messages.iter().any(|m| m.trim_end() == line), "{line:?} not in {messages:?}");
    }
    assert_eq!(messages.iter().filter(|m| m.starts_with("REPORT RequestId:")).count(), 2, "{messages:?}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_dependency_jar_in_lib() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);
    // A tiny library compiled into lib/dep.jar (a jar is a zip); the handler's zip has no dep/ classes.
    let dep_jar = code.zip(&["dep/Greeter"], &[]);
    let package = code.zip(&["example/UsesDep"], &[("lib/dep.jar", &dep_jar)]);
    create(c, "jdep", RUNTIME, "example.UsesDep::handler", package)
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");
    let out = invoke(c, "jdep", &json!("Jane")).await;
    assert_eq!(out.ok(), json!("greetings from lib/dep.jar, Jane"));

    // Without the library the class is missing when the handler runs: the JVM's error type.
    create(c, "jnodep", RUNTIME, "example.UsesDep::handler", code.zip(&["example/UsesDep"], &[]))
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");
    let missing = invoke(c, "jnodep", &json!("Jane")).await;
    let e = missing.unhandled();
    assert_eq!(e["errorType"], "java.lang.NoClassDefFoundError", "{e}");
    assert!(e["errorMessage"].as_str().is_some_and(|m| m.contains("dep/Greeter")), "{e}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_warm_reuse_at_128_mb() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);
    // 128 MB, the default: the JVM fits (docs/runtimes-java.md, JVM sizing).
    create(c, "jcounter", RUNTIME, "example.Counter::handler", code.zip(&["example/Counter"], &[]))
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");
    let started = std::time::Instant::now();
    let first = invoke(c, "jcounter", &json!({})).await;
    let cold = started.elapsed();
    let (count, loaded) = split_counter(&first.ok());
    assert_eq!(count, 1);
    let cold_report = assert_platform_lines(&first.log, &first.request_id, 128);
    assert!(cold_report.contains("\tInit Duration: "), "a cold start reports Init Duration: {cold_report}");
    assert!(first.log.contains("invocation 1\n"), "{}", first.log);

    let started = std::time::Instant::now();
    let second = invoke(c, "jcounter", &json!({})).await;
    let warm = started.elapsed();
    assert_eq!(split_counter(&second.ok()), (2, loaded), "the static counter persists in the warm JVM");
    let report = assert_platform_lines(&second.log, &second.request_id, 128);
    assert!(!report.contains("Init Duration"), "a warm call has no Init Duration: {report}");
    assert!(second.log.contains("invocation 2\n") && !second.log.contains("invocation 1"), "{}", second.log);
    let init = cold_report.split("\tInit Duration: ").nth(1).unwrap_or_default().trim_end();
    eprintln!("java17 through the SDK, 128 MB: cold invoke {cold:?} (Init Duration {init}), warm invoke {warm:?}");
    fx.stop().await;
}

/// `"<count> <class load time>"` from `example.Counter`.
fn split_counter(v: &Value) -> (u64, u64) {
    let s = v.as_str().unwrap_or_else(|| panic!("a string: {v}"));
    let (count, loaded) = s.split_once(' ').expect("two numbers");
    (count.parse().expect("count"), loaded.parse().expect("time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_missing_class_is_a_function_error() {
    let Some(fx) = start().await else { return };
    let c = &fx.client;
    let code = compiled(&fx);
    create(c, "jmissing", RUNTIME, "example.Missing::handleRequest", code.zip(&["example/Hello"], &[]))
        .memory_size(256)
        .timeout(TIMEOUT)
        .send()
        .await
        .expect("create");
    let out = invoke(c, "jmissing", &json!({})).await;
    let e = out.unhandled();
    assert_eq!(e["errorType"], "java.lang.ClassNotFoundException", "{e}");
    assert_eq!(e["errorMessage"], "Class not found: example.Missing", "the payload names the class: {e}");
    assert!(out.log.contains("example.Missing"), "the init error is logged:\n{}", out.log);
    // Every call fails the same way; the function stays invocable.
    let again = invoke(c, "jmissing", &json!({})).await;
    assert_eq!(again.unhandled()["errorType"], "java.lang.ClassNotFoundException");
    fx.stop().await;
}
