#!/usr/bin/env python3
"""End-to-end tests for Lamina's managed-runtime bootstraps (python/bootstrap.py, nodejs/bootstrap.js).

Each test runs a bootstrap as a real subprocess against a local Runtime API server (real HTTP,
one server per process, like one sandbox), with sample handler code written to a temporary task
root. Output attribution mirrors the execution host: at the moment a response/error POST arrives,
the server drains the child's stdout/stderr pipes, so everything written before the POST is
credited to that invocation.

    python3 runtimes/test_bootstraps.py          # prints "N passed, M failed"; exit 1 on failure

Interpreters: /usr/bin/python3.11 and /usr/bin/node (override with LAMINA_TEST_PYTHON /
LAMINA_TEST_NODE). Standard library only; no fixed sleeps are used for synchronisation.
"""

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PY_BOOTSTRAP = os.path.join(HERE, "python", "bootstrap.py")
NODE_BOOTSTRAP = os.path.join(HERE, "nodejs", "bootstrap.js")
PYTHON = os.environ.get("LAMINA_TEST_PYTHON") or (
    "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable)
NODE = os.environ.get("LAMINA_TEST_NODE") or (
    "/usr/bin/node" if os.path.exists("/usr/bin/node") else shutil.which("node") or "node")

WAIT = 10.0  # upper bound for any awaited condition; a passing run takes milliseconds per step
PREFIX = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-function"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
LOG_STREAM = "2016/06/06/[$LATEST]2a9e1f0b7c4d4e2b9f1c3d5e7a9b0c1d"
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
CLIENT_CONTEXT = {
    "client": {"installation_id": "inst-1", "app_title": "Demo", "app_version_name": "1.0",
               "app_version_code": "100", "app_package_name": "com.example.demo"},
    "custom": {"color": "blue"},
    "env": {"platform": "Android", "platform_version": "11", "make": "Acme", "model": "X1",
            "locale": "en_US"},
}
IDENTITY = {"cognitoIdentityId": "us-east-1:identity-1", "cognitoIdentityPoolId": "us-east-1:pool-1"}


# ---------------------------------------------------------------------------
# Harness: output capture, Runtime API server, sandbox process
# ---------------------------------------------------------------------------


class OutputCapture:
    """Collects a child's stdout/stderr. Reads happen under a lock from a background thread and
    from the server at POST time, so the snapshot taken at a POST holds everything written
    before it (the bytes are already in the pipe when the POST arrives)."""

    def __init__(self, proc):
        self.lock = threading.Lock()
        self.names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        self.data = {"stdout": bytearray(), "stderr": bytearray()}
        self.open = set(self.names)
        for fd in self.names:
            os.set_blocking(fd, False)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while self.open:
            select.select(list(self.open), [], [], 0.05)
            self.drain()

    def drain(self):
        with self.lock:
            for fd in list(self.open):
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not chunk:
                        self.open.discard(fd)
                        break
                    self.data[self.names[fd]] += chunk
            return {name: len(buf) for name, buf in self.data.items()}

    def text(self, name, start=0, end=None):
        with self.lock:
            return bytes(self.data[name][start:end]).decode("utf-8", "replace")


class RuntimeAPI:
    """The Runtime API of one sandbox: hands out queued invocations, records every POST."""

    def __init__(self):
        self.cond = threading.Condition()
        self.queue = []
        self.posts = []
        self.next_calls = 0
        self.closed = False
        self.output = None
        self._credited = {"stdout": 0, "stderr": 0}
        self.server = _ApiServer(("127.0.0.1", 0), _ApiHandler)
        self.server.api = self
        self.address = "127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def take_next(self):
        with self.cond:
            self.next_calls += 1
            while not self.queue and not self.closed:
                self.cond.wait()
            return None if self.closed else self.queue.pop(0)

    def record_post(self, path, headers, body):
        with self.cond:
            ends = self.output.drain()
            record = {"path": path, "headers": headers, "body": body, "time": time.monotonic()}
            for name in ("stdout", "stderr"):
                record[name] = self.output.text(name, self._credited[name], ends[name])
                self._credited[name] = ends[name]
            m = re.fullmatch(re.escape(PREFIX) + r"/invocation/([^/]+)/(response|error)", path)
            if m:
                record["id"], record["kind"] = m.group(1), m.group(2)
            elif path == PREFIX + "/init/error":
                record["id"], record["kind"] = None, "init_error"
            else:
                record["id"], record["kind"] = None, "unknown"
            try:
                record["json"] = json.loads(body) if body else None
            except ValueError:
                record["json"] = "<invalid JSON>"
            self.posts.append(record)
            self.cond.notify_all()

    def wait_post(self, predicate):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while True:
                for record in self.posts:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no matching POST within %.0f s; posts so far: %r"
                                         % (WAIT, [(p["path"], p["body"][:200]) for p in self.posts]))
                self.cond.wait(remaining)

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not self.api.closed:  # a killed bootstrap leaves its /next connection broken
            super().handle_error(request, client_address)


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY a kept-alive connection (past
    # TCP's quick-ACK start) stalls each response on the client's 40 ms delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _send(self, status, body, headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != PREFIX + "/invocation/next":
            return self._send(404, b'{"errorMessage":"unknown path"}')
        invocation = self.server.api.take_next()
        if invocation is None:
            return self._send(503, b'{"errorMessage":"shutting down"}')
        self._send(200, invocation["body"], invocation["headers"])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.api.record_post(self.path, dict(self.headers), body)
        self._send(202, b'{"status":"OK"}')


SANDBOXES = []


class Sandbox:
    """One bootstrap process with its own Runtime API, like one sandbox of the execution host."""

    def __init__(self, runtime, task_root, handler, cwd=None):
        self.runtime, self.task_root = runtime, task_root
        self.api = RuntimeAPI()
        env = {
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "AWS_LAMBDA_FUNCTION_NAME": "my-function",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/my-function",
            "AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EXECUTION_ENV": "AWS_Lambda_" + ("python3.11" if runtime == "python" else "nodejs20.x"),
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "MY_VAR": "from-function-config",
            "PYTHONDONTWRITEBYTECODE": "1",  # keep the source tree clean
        }
        # The execution host's command line (config.rs): -S, site-packages added by the runtime.
        cmd = [PYTHON, "-u", "-S", PY_BOOTSTRAP] if runtime == "python" else [NODE, NODE_BOOTSTRAP]
        self.proc = subprocess.Popen(cmd, cwd=cwd or task_root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.output = OutputCapture(self.proc)
        self.api.output = self.output
        SANDBOXES.append(self)

    def invoke(self, event=None, raw=None, client_context=None, identity=None,
               timeout_ms=300000, trace_id=TRACE):
        """Queue one invocation and wait for the bootstrap's response or error POST."""
        request_id = str(uuid.uuid4())
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + timeout_ms),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
        }
        if trace_id:
            headers["Lambda-Runtime-Trace-Id"] = trace_id
        if client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(client_context)
        if identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = json.dumps(identity)
        body = raw if raw is not None else json.dumps(event).encode()
        started = time.monotonic()
        with self.api.cond:
            self.api.queue.append({"headers": headers, "body": body})
            self.api.cond.notify_all()
        record = self.api.wait_post(lambda p: p["id"] == request_id)
        return dict(record, elapsed=record["time"] - started, request_id=request_id)

    def wait_exit(self):
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            raise AssertionError("bootstrap did not exit")

    def all_output(self, name):
        self.output.drain()
        return self.output.text(name)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.output.thread.join(WAIT)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.api.close()


TMP = tempfile.mkdtemp(prefix="lamina-bootstrap-test-")


def task_root(files):
    root = tempfile.mkdtemp(dir=TMP)
    for name, text in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n"))
    return root


_shared = {}


def shared(key, factory):
    """A sandbox reused by several tests (module state then also spans tests, as in a warm one)."""
    if key not in _shared:
        _shared[key] = factory()
    return _shared[key]


def init_failure(runtime, files, handler):
    """Start a bootstrap expected to fail init; return (init error record, sandbox, exit code)."""
    box = Sandbox(runtime, task_root(files), handler)
    record = box.api.wait_post(lambda p: p["kind"] == "init_error")
    code = box.wait_exit()
    assert box.api.next_calls == 0, "init failed but /next was still called"
    assert record["headers"].get("Lambda-Runtime-Function-Error-Type") == record["json"].get("errorType")
    return record, box, code


def eq(actual, expected, what=""):
    assert actual == expected, "%s\n  expected: %r\n  actual:   %r" % (what, expected, actual)


def match(pattern, text, what=""):
    assert re.search(pattern, text, re.M), "%s\n  pattern %r not found in:\n%s" % (what, pattern, text)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------------------
# Python handler code
# ---------------------------------------------------------------------------

PY_MAIN = """
    import decimal
    import logging
    import os
    import time

    counter = 0


    class MyError(Exception):
        pass


    def describe(context):
        cc = context.client_context
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
            "client_context": None if cc is None else {
                "client": {k: getattr(cc.client, k) for k in ("installation_id", "app_title",
                           "app_version_name", "app_version_code", "app_package_name")},
                "custom": cc.custom,
                "env": cc.env,
            },
            "remaining": context.get_remaining_time_in_millis(),
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "my_var": os.environ.get("MY_VAR"),
            "cwd": os.getcwd(),
        }


    def handler(event, context):
        global counter
        if event is None:
            return "event is None"
        if "key1" in event:
            return event["key1"]
        if "first_name" in event:
            return {"message": "Hello %s %s!" % (event["first_name"], event["last_name"])}
        action = event["action"]
        if action == "none":
            return None
        if action == "context":
            return describe(context)
        if action == "remaining":
            first = context.get_remaining_time_in_millis()
            time.sleep(0.03)
            return [first, context.get_remaining_time_in_millis()]
        if action == "raise":
            raise Exception('I failed!')
        if action == "raise_custom":
            raise MyError("custom failure")
        if action == "bytes":
            return {"data": b"raw"}
        if action == "decimal":
            return {"price": decimal.Decimal("1.5"), "count": decimal.Decimal("3")}
        if action == "log_default":
            print("plain print h\u00e9llo \u2713")
            logging.info("hidden info")
            logging.warning("careful %s", "now")
            return "logged"
        if action == "log_info":
            root = logging.getLogger()
            root.setLevel(logging.INFO)
            root.info("got event %s", event["payload"])
            root.debug("hidden debug")
            root.setLevel(logging.WARNING)
            return "logged"
        if action == "count":
            counter += 1
            return counter
        raise ValueError("unknown action %r" % action)
"""


def py_main():
    return shared("py_main", lambda: Sandbox("python", task_root({"lambda_function.py": PY_MAIN}),
                                             "lambda_function.handler"))


@test
def py_dict_result():
    r = py_main().invoke({"first_name": "John", "last_name": "Doe"})
    eq(r["kind"], "response")
    eq(r["json"], {"message": "Hello John Doe!"})


@test
def py_string_result():
    r = py_main().invoke({"key3": "value3", "key2": "value2", "key1": "value1"})
    eq((r["kind"], r["body"]), ("response", b'"value1"'))


@test
def py_none_result():
    r = py_main().invoke({"action": "none"})
    eq((r["kind"], r["body"]), ("response", b"null"))


@test
def py_json_codec_matches_json():
    # The runtime's JSON functions (on the C accelerator) must agree with json.loads/json.dumps.
    sys.path.insert(0, os.path.join(HERE, "python"))
    sys.dont_write_bytecode = True
    try:
        import lamina_runtime as rt
    finally:
        sys.path.pop(0)
    import decimal
    docs = ['{}', '[]', ' {"a": [1, 2.5, -3e10, true, false, null, "x\\u00e9\\ud83d\\ude00"]} ', '"\u2713"',
            '12345678901234567890', '-0.0', '[NaN, Infinity, -Infinity]', '{"a": {"a": {"a": 1}}}', '\t\r\n 7 \n']
    for doc in docs:
        for data in (doc, doc.encode("utf-8")):
            got, want = rt.json_loads(data), json.loads(data)
            eq(json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True), "loads %r" % data)
    for bad in ['', ' ', '{', '{"a": 1} x', '[1,]', "{'a': 1}", b'\xff', b'\xef\xbb\xbf{}', '\ufeff{}']:
        try:
            json.loads(bad)
            expected = None
        except ValueError as exc:
            expected = (type(exc), str(exc))
        try:
            rt.json_loads(bad)
            got = None
        except ValueError as exc:
            got = (type(exc), str(exc))
        eq(got, expected, "error for %r" % (bad,))

    def default(value):
        if isinstance(value, decimal.Decimal):
            return float(value)
        raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)

    values = [None, True, 1, -2.5, float("nan"), "h\u00e9llo \u2713 \U0001f600", [1, [2, {"k": (3, 4)}]],
              {"b": 1, "a": 2, 3: "int key", None: 0}, {"price": decimal.Decimal("1.5")}, ""]
    for value in values:
        eq(rt.json_dumps(value, default=default), json.dumps(value, default=default), "dumps %r" % (value,))
    for value in ({"x": object()}, {(1, 2): 1}):
        with_json = with_rt = None
        try:
            json.dumps(value, default=default)
        except TypeError as exc:
            with_json = str(exc)
        try:
            rt.json_dumps(value, default=default)
        except TypeError as exc:
            with_rt = str(exc)
        eq(with_rt, with_json, "dumps error for %r" % (value,))
    circular = []
    circular.append(circular)
    try:
        rt.json_dumps(circular)
        raise AssertionError("circular structure was encoded")
    except ValueError as exc:
        eq(str(exc), "Circular reference detected")


@test
def py_without_site_keeps_site_packages_and_exit_and_starts_lean():
    site_dirs = json.loads(subprocess.run(
        [PYTHON, "-c", "import json, os, site; print(json.dumps([p for p in site.getsitepackages() if os.path.isdir(p)]))"],
        capture_output=True, check=True, env={}).stdout)
    box = Sandbox("python", task_root({"lambda_function.py": """
        import builtins
        import sys


        def handler(event, context):
            heavy = ("site", "re", "json", "encodings.idna", "logging", "importlib.util", "traceback", "socket")
            return {"path": sys.path, "no_site": sys.flags.no_site, "exit": callable(getattr(builtins, "exit", None)),
                    "heavy": [m for m in heavy if m in sys.modules]}
    """}), "lambda_function.handler")
    r = box.invoke({})
    eq(r["kind"], "response")
    doc = r["json"]
    eq((doc["no_site"], doc["exit"]), (1, True))
    eq(doc["heavy"], [], "modules whose import would slow every cold start")
    eq(doc["path"][0], box.task_root, "the task root comes first")
    for d in site_dirs:
        assert d in doc["path"], "%s missing from sys.path %r" % (d, doc["path"])
    eq([p for p in doc["path"] if os.path.dirname(PY_BOOTSTRAP) == p], [], "the runtime's directory is not on sys.path")


@test
def py_empty_event_is_none():
    r = py_main().invoke(raw=b"")
    eq(r["json"], "event is None")


@test
def py_context_fields_with_client_context():
    box = py_main()
    r = box.invoke({"action": "context"}, client_context=CLIENT_CONTEXT, identity=IDENTITY, timeout_ms=3000)
    c = r["json"]
    remaining = c.pop("remaining")
    assert 0 < remaining <= 3000, remaining
    eq(c, {
        "function_name": "my-function", "function_version": "$LATEST", "invoked_function_arn": ARN,
        "memory_limit_in_mb": "128", "aws_request_id": r["request_id"],
        "log_group_name": "/aws/lambda/my-function", "log_stream_name": LOG_STREAM,
        "identity": ["us-east-1:identity-1", "us-east-1:pool-1"],
        "client_context": CLIENT_CONTEXT, "trace": TRACE, "my_var": "from-function-config",
        "cwd": box.task_root,
    })


@test
def py_context_without_client_context_or_trace():
    c = py_main().invoke({"action": "context"}, trace_id=None)["json"]
    eq((c["client_context"], c["identity"], c["trace"]), (None, [None, None], None))


@test
def py_remaining_time_decreases():
    box = py_main()
    first, second = box.invoke({"action": "remaining"}, timeout_ms=3000)["json"]
    assert 2000 < first <= 3000 and second <= first - 25, (first, second)
    eq(box.invoke({"action": "remaining"}, timeout_ms=-5000)["json"], [0, 0], "past deadline")


@test
def py_exception_shape_and_log():
    box = py_main()
    r = box.invoke({"action": "raise"})
    eq(r["kind"], "error")
    doc = r["json"]
    eq(sorted(doc), ["errorMessage", "errorType", "requestId", "stackTrace"])
    eq((doc["errorMessage"], doc["errorType"], doc["requestId"]),
       ("I failed!", "Exception", r["request_id"]))
    eq(r["headers"].get("Lambda-Runtime-Function-Error-Type"), "Exception")
    frame = '  File "%s/lambda_function.py", line %%d, in handler\n    raise Exception(\'I failed!\')\n' % box.task_root
    eq(len(doc["stackTrace"]), 1, "only the user's frame, no bootstrap frames")
    assert re.fullmatch(re.escape(frame).replace("%d", r"\d+"), doc["stackTrace"][0]), doc["stackTrace"]
    assert r["stderr"].startswith("[ERROR] Exception: I failed!\nTraceback (most recent call last):\n"
                                  '  File "%s/lambda_function.py", line ' % box.task_root), r["stderr"]
    assert r["stderr"].endswith("    raise Exception('I failed!')\n"), r["stderr"]


@test
def py_custom_exception_type():
    doc = py_main().invoke({"action": "raise_custom"})["json"]
    eq((doc["errorType"], doc["errorMessage"]), ("MyError", "custom failure"))


@test
def py_unserialisable_result():
    r = py_main().invoke({"action": "bytes"})
    eq(r["kind"], "error")
    eq((r["json"]["errorType"], r["json"]["errorMessage"]),
       ("Runtime.MarshalError", "Unable to marshal response: Object of type bytes is not JSON serializable"))
    eq(py_main().invoke({"action": "decimal"})["json"], {"price": 1.5, "count": 3}, "Decimal result")


@test
def py_logging_default_level_warning():
    r = py_main().invoke({"action": "log_default"})
    assert "plain print h\u00e9llo \u2713\n" in r["stdout"], r["stdout"]
    assert "hidden info" not in r["stdout"], r["stdout"]
    match(r"^\[WARNING\]\t%s\t%s\tcareful now$" % (TS, r["request_id"]), r["stdout"])


@test
def py_logging_info_after_set_level():
    r = py_main().invoke({"action": "log_info", "payload": {"k": 1}})
    match(r"^\[INFO\]\t%s\t%s\tgot event \{'k': 1\}$" % (TS, r["request_id"]), r["stdout"])
    assert "hidden debug" not in r["stdout"]


@test
def py_module_state_persists():
    box = py_main()
    first = box.invoke({"action": "count"})["json"]
    eq(box.invoke({"action": "count"})["json"], first + 1)


@test
def py_nested_handler_paths_and_init_logging():
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/mod.py": """
            import logging
            logging.warning("init warning")

            def handler(event, context):
                return "nested"
        """,
    }
    root = task_root(files)
    for handler in ("pkg/sub/mod.handler", "pkg.sub.mod.handler"):
        box = Sandbox("python", root, handler)
        eq(box.invoke({})["json"], "nested", handler)
        match(r"^\[WARNING\]\t%s\t\tinit warning$" % TS, box.all_output("stdout"), "init log, empty request id")


@test
def py_honours_task_root_not_cwd():
    root = task_root({"app.py": "def handler(event, context):\n    return 'from task root'\n"})
    box = Sandbox("python", root, "app.handler", cwd=tempfile.mkdtemp(dir=TMP))
    eq(box.invoke({})["json"], "from task root")


@test
def py_init_syntax_error():
    rec, box, code = init_failure("python", {"lambda_function.py": "def handler(event, context)\n    return 1\n"},
                                  "lambda_function.handler")
    doc = rec["json"]
    eq(doc["errorType"], "Runtime.UserCodeSyntaxError")
    match(r"^Syntax error in module 'lambda_function': .+ \(lambda_function\.py, line 1\)$", doc["errorMessage"])
    assert isinstance(doc["stackTrace"], list) and all(isinstance(s, str) for s in doc["stackTrace"])
    assert code != 0
    assert box.all_output("stderr").startswith(
        "[ERROR] Runtime.UserCodeSyntaxError: Syntax error in module 'lambda_function': ")


@test
def py_init_missing_module():
    rec, box, code = init_failure("python", {"other.py": ""}, "lambda_function.handler")
    eq((rec["json"]["errorType"], rec["json"]["errorMessage"]),
       ("Runtime.ImportModuleError", "Unable to import module 'lambda_function': No module named 'lambda_function'"))
    assert code != 0
    assert ("[ERROR] Runtime.ImportModuleError: Unable to import module 'lambda_function': "
            "No module named 'lambda_function'") in box.all_output("stderr")


@test
def py_init_import_error_inside_module():
    rec, _, _ = init_failure("python", {"lambda_function.py": "import not_a_real_dependency\n"},
                             "lambda_function.handler")
    eq((rec["json"]["errorType"], rec["json"]["errorMessage"]),
       ("Runtime.ImportModuleError",
        "Unable to import module 'lambda_function': No module named 'not_a_real_dependency'"))


@test
def py_init_handler_missing():
    rec, _, code = init_failure("python", {"lambda_function.py": "def other(e, c):\n    pass\n"},
                                "lambda_function.handler")
    eq((rec["json"]["errorType"], rec["json"]["errorMessage"]),
       ("Runtime.HandlerNotFound", "Handler 'handler' missing on module 'lambda_function'"))
    assert code != 0


@test
def py_init_malformed_handler():
    rec, _, _ = init_failure("python", {"lambda_function.py": ""}, "lambda_function")
    eq((rec["json"]["errorType"], rec["json"]["errorMessage"]),
       ("Runtime.MalformedHandlerName",
        "Bad handler 'lambda_function': not enough values to unpack (expected 2, got 1)"))


@test
def py_init_other_exception():
    rec, box, _ = init_failure("python", {"lambda_function.py": "raise ValueError('bad config')\n"},
                               "lambda_function.handler")
    doc = rec["json"]
    eq((doc["errorType"], doc["errorMessage"]), ("ValueError", "bad config"))
    assert doc["stackTrace"] and all("bootstrap.py" not in s and "lamina_runtime" not in s and "<frozen" not in s for s in doc["stackTrace"]), doc
    assert "lambda_function.py" in doc["stackTrace"][0], doc
    assert "[ERROR] ValueError: bad config\n" in box.all_output("stderr")


# ---------------------------------------------------------------------------
# Node.js handler code
# ---------------------------------------------------------------------------

NODE_MAIN = """
    const fs = require('fs');
    console.log('Loading function');

    let counter = 0;
    let pending = null;

    const actions = {
      object: (e, ctx, cb) => cb(null, { greeting: `Hello ${e.first_name} ${e.last_name}!` }),
      null: (e, ctx, cb) => cb(null, null),
      empty_callback: (e, ctx, cb) => cb(),
      implicit: () => {},
      context: (e, ctx, cb) => cb(null, {
        functionName: ctx.functionName, functionVersion: ctx.functionVersion,
        invokedFunctionArn: ctx.invokedFunctionArn, memoryLimitInMB: ctx.memoryLimitInMB,
        awsRequestId: ctx.awsRequestId, logGroupName: ctx.logGroupName, logStreamName: ctx.logStreamName,
        identity: ctx.identity, clientContext: ctx.clientContext,
        customAlias: ctx.clientContext ? ctx.clientContext.Custom : 'absent',
        waits: ctx.callbackWaitsForEmptyEventLoop, remaining: ctx.getRemainingTimeInMillis(),
        trace: process.env._X_AMZN_TRACE_ID === undefined ? null : process.env._X_AMZN_TRACE_ID,
        myVar: process.env.MY_VAR, cwd: process.cwd(),
      }),
      remaining: (e, ctx, cb) => {
        const first = ctx.getRemainingTimeInMillis();
        setTimeout(() => cb(null, [first, ctx.getRemainingTimeInMillis()]), 30);
      },
      error: (e, ctx, cb) => cb(new Error('something is wrong')),
      throw: () => { throw new TypeError('bad thing'); },
      string_error: (e, ctx, cb) => cb('plain failure'),
      promise: async () => { await new Promise((r) => setTimeout(r, 5)); return { async: true }; },
      reject: async () => { throw new RangeError('nope'); },
      hang_promise: () => new Promise(() => {}),
      succeed: (e, ctx) => { pending = setTimeout(() => {}, 30000); ctx.succeed({ via: 'succeed' }); },
      fail: (e, ctx) => ctx.fail(new Error('failed via fail')),
      fail_empty: (e, ctx) => ctx.fail(),
      done_error: (e, ctx) => ctx.done(new Error('done error'), 'ignored'),
      done_ok: (e, ctx) => ctx.done(null, { via: 'done' }),
      first_wins: (e, ctx, cb) => { cb(null, 'first'); cb(null, 'second'); ctx.succeed('third'); ctx.fail('x'); },
      circular: (e, ctx, cb) => { const o = {}; o.self = o; cb(null, o); },
      log: (e, ctx, cb) => {
        console.log('hello %s', 'world'); console.info('info', 1); console.warn('warn'); console.error('error');
        console.debug('debug'); console.trace('trace'); console.log('line1\\nline2');
        cb(null, 'logged');
      },
      big_log: (e, ctx, cb) => {
        process.stdout.write('raw write\\n'); // makes fd 1 non-blocking: the bootstrap must cope
        for (let i = 0; i < 64; i++) console.log(String(i).padStart(4, '0') + 'x'.repeat(32 * 1024));
        cb(null, 'big');
      },
      count: (e, ctx, cb) => cb(null, ++counter),
      wait_true: (e, ctx, cb) => {
        setTimeout(() => { fs.writeFileSync(e.marker, 'x'); console.log('timer fired'); }, 200);
        cb(null, 'waited');
      },
      wait_false: (e, ctx, cb) => {
        ctx.callbackWaitsForEmptyEventLoop = false;
        pending = setTimeout(() => {}, 30000);
        cb(null, 'not waited');
      },
      clear: (e, ctx, cb) => { clearTimeout(pending); cb(null, 'cleared'); },
      event_type: (e, ctx, cb) => cb(null, e === null ? 'null' : typeof e),
    };

    exports.handler = function (event, context, callback) {
      if (event === null) return callback(null, 'event is null');
      if (event.key1 !== undefined) return callback(null, event.key1);
      return actions[event.action](event, context, callback);
    };
    exports.notAFunction = 42;
"""


def node_main():
    return shared("node_main", lambda: Sandbox("nodejs", task_root({"index.js": NODE_MAIN}), "index.handler"))


def node_records(stdout, request_id):
    """Log records of one invocation as (level, message) pairs; checks the record format."""
    records = []
    for line in stdout.split("\n")[:-1]:  # not splitlines(): "\r" continues a record
        m = re.fullmatch(r"%s\t%s\t([A-Z]+)\t(.*)" % (TS, re.escape(str(request_id))), line)
        assert m, "malformed log line %r" % line
        records.append((m.group(1), m.group(2)))
    return records


@test
def node_object_result():
    r = node_main().invoke({"action": "object", "first_name": "John", "last_name": "Doe"})
    eq((r["kind"], r["json"]), ("response", {"greeting": "Hello John Doe!"}))


@test
def node_string_result():
    r = node_main().invoke({"key3": "value3", "key2": "value2", "key1": "value1"})
    eq((r["kind"], r["body"]), ("response", b'"value1"'))


@test
def node_null_results():
    box = node_main()
    for action in ("null", "empty_callback", "implicit"):
        r = box.invoke({"action": action})
        eq((r["kind"], r["body"]), ("response", b"null"), action)
    eq(box.invoke(raw=b"")["json"], "event is null")


@test
def node_context_fields_with_client_context():
    box = node_main()
    r = box.invoke({"action": "context"}, client_context=CLIENT_CONTEXT, identity=IDENTITY, timeout_ms=3000)
    c = r["json"]
    remaining = c.pop("remaining")
    assert 0 < remaining <= 3000, remaining
    eq(c, {
        "functionName": "my-function", "functionVersion": "$LATEST", "invokedFunctionArn": ARN,
        "memoryLimitInMB": "128", "awsRequestId": r["request_id"],
        "logGroupName": "/aws/lambda/my-function", "logStreamName": LOG_STREAM,
        "identity": IDENTITY, "clientContext": CLIENT_CONTEXT, "customAlias": {"color": "blue"},
        "waits": True, "trace": TRACE, "myVar": "from-function-config", "cwd": box.task_root,
    })


@test
def node_context_without_client_context_or_trace():
    c = node_main().invoke({"action": "context"}, trace_id=None)["json"]
    assert "clientContext" not in c and "identity" not in c, c  # undefined: dropped by JSON
    eq((c["customAlias"], c["trace"]), ("absent", None))


@test
def node_remaining_time_decreases():
    box = node_main()
    first, second = box.invoke({"action": "remaining"}, timeout_ms=3000)["json"]
    assert 2000 < first <= 3000 and second <= first - 25, (first, second)
    eq(box.invoke({"action": "remaining"}, timeout_ms=-5000)["json"], [0, 0], "past deadline")


@test
def node_callback_error_shape_and_log():
    box = node_main()
    r = box.invoke({"action": "error"})
    eq(r["kind"], "error")
    doc = r["json"]
    eq((sorted(doc), doc["errorType"], doc["errorMessage"]),
       (["errorMessage", "errorType", "stackTrace"], "Error", "something is wrong"))
    eq(r["headers"].get("Lambda-Runtime-Function-Error-Type"), "Error")
    assert doc["stackTrace"] and all(isinstance(s, str) for s in doc["stackTrace"]), doc
    match(r"^Object\.error \(%s/index\.js:\d+:\d+\)$" % re.escape(box.task_root), doc["stackTrace"][0])
    (level, message), = node_records(r["stdout"], r["request_id"])
    eq(level, "ERROR")
    assert message.startswith("Invoke Error \t"), message
    logged = json.loads(message[len("Invoke Error \t"):])
    eq((logged["errorType"], logged["errorMessage"]), ("Error", "something is wrong"))


@test
def node_thrown_error():
    r = node_main().invoke({"action": "throw"})
    eq((r["kind"], r["json"]["errorType"], r["json"]["errorMessage"]), ("error", "TypeError", "bad thing"))


@test
def node_non_error_value():
    r = node_main().invoke({"action": "string_error"})
    eq((r["kind"], r["json"]), ("error", {"errorMessage": "plain failure"}))


@test
def node_async_handlers():
    box = node_main()
    eq(box.invoke({"action": "promise"})["json"], {"async": True})
    r = box.invoke({"action": "reject"})
    eq((r["kind"], r["json"]["errorType"], r["json"]["errorMessage"]), ("error", "RangeError", "nope"))
    r = box.invoke({"action": "hang_promise"})
    eq((r["kind"], r["json"]["errorType"]), ("error", "Runtime.NodeJsExit"), "promise that can never settle")


@test
def node_context_methods():
    box = node_main()
    r = box.invoke({"action": "succeed"})  # a 30 s timer is pending: succeed must not wait for it
    eq((r["kind"], r["json"]), ("response", {"via": "succeed"}))
    eq(box.invoke({"action": "clear"})["json"], "cleared")
    r = box.invoke({"action": "fail"})
    eq((r["kind"], r["json"]["errorType"], r["json"]["errorMessage"]), ("error", "Error", "failed via fail"))
    eq(box.invoke({"action": "fail_empty"})["json"], {"errorMessage": "handled"})
    r = box.invoke({"action": "done_error"})
    eq((r["kind"], r["json"]["errorMessage"]), ("error", "done error"))
    eq(box.invoke({"action": "done_ok"})["json"], {"via": "done"})


@test
def node_first_completion_wins():
    box = node_main()
    r = box.invoke({"action": "first_wins"})
    eq((r["kind"], r["json"]), ("response", "first"))
    eq(box.invoke({"action": "count"})["kind"], "response", "runtime still healthy")
    eq(len([p for p in box.api.posts if p["id"] == r["request_id"]]), 1, "one POST per invocation")


@test
def node_unserialisable_result():
    r = node_main().invoke({"action": "circular"})
    eq((r["kind"], r["json"]["errorType"]), ("error", "TypeError"))
    assert r["json"]["errorMessage"].startswith("Converting circular structure to JSON"), r["json"]


@test
def node_logging_format():
    box = node_main()
    match(r"^%s\tundefined\tINFO\tLoading function$" % TS, box.all_output("stdout"), "init log")
    r = box.invoke({"action": "log"})
    eq(node_records(r["stdout"], r["request_id"]), [
        ("INFO", "hello world"), ("INFO", "info 1"), ("WARN", "warn"), ("ERROR", "error"),
        ("DEBUG", "debug"), ("TRACE", "trace"), ("INFO", "line1\rline2"),
    ])


@test
def node_large_output_is_complete_before_response():
    r = node_main().invoke({"action": "big_log"})
    lines = r["stdout"].split("\n")
    eq((lines[0], lines[-1], len(lines)), ("raw write", "", 66))
    records = node_records("\n".join(lines[1:]), r["request_id"])
    eq([(level, msg[:4], len(msg)) for level, msg in records],
       [("INFO", "%04d" % i, 4 + 32 * 1024) for i in range(64)])


@test
def node_module_state_persists():
    box = node_main()
    first = box.invoke({"action": "count"})["json"]
    eq(box.invoke({"action": "count"})["json"], first + 1)


@test
def node_waits_for_empty_event_loop_by_default():
    box = node_main()
    marker = os.path.join(TMP, "marker-%s" % uuid.uuid4())
    r = box.invoke({"action": "wait_true", "marker": marker})
    eq(r["json"], "waited")
    assert os.path.exists(marker), "response posted before the pending timer ran"
    assert r["elapsed"] >= 0.19, r["elapsed"]
    eq(node_records(r["stdout"], r["request_id"]), [("INFO", "timer fired")], "timer output credited")


@test
def node_callback_waits_false_responds_at_once():
    box = node_main()
    r = box.invoke({"action": "wait_false"})  # a 30 s timer stays pending
    eq((r["kind"], r["json"]), ("response", "not waited"))
    eq(box.invoke({"action": "clear"})["json"], "cleared", "next invocation runs while the timer is pending")


@test
def node_trace_id_env():
    box = node_main()
    eq(box.invoke({"action": "context"})["json"]["trace"], TRACE)
    eq(box.invoke({"action": "context"}, trace_id=None)["json"]["trace"], None)


@test
def node_module_kinds():
    files = {
        "esm.mjs": """
            export const handler = async (event, context) => ({ kind: 'mjs', id: context.awsRequestId });
        """,
        "common.cjs": "exports.handler = (event, context, callback) => callback(null, 'cjs');\n",
        "lib/util.js": "exports.nested = { deep: (event, context, callback) => callback(null, 'deep') };\n",
        "mod/package.json": '{"type": "module"}',
        "mod/app.js": "export async function handler(event) { return { kind: 'type-module', echo: event }; }\n",
    }
    root = task_root(files)
    r = Sandbox("nodejs", root, "esm.handler").invoke({})
    eq(r["json"], {"kind": "mjs", "id": r["request_id"]})
    eq(Sandbox("nodejs", root, "common.handler").invoke({})["json"], "cjs")
    eq(Sandbox("nodejs", root, "lib/util.nested.deep").invoke({})["json"], "deep")
    eq(Sandbox("nodejs", root, "mod/app.handler").invoke([1, 2])["json"], {"kind": "type-module", "echo": [1, 2]})


@test
def node_honours_task_root_not_cwd():
    root = task_root({"app.js": "exports.handler = async () => 'from task root';\n"})
    box = Sandbox("nodejs", root, "app.handler", cwd=tempfile.mkdtemp(dir=TMP))
    eq(box.invoke({})["json"], "from task root")


def node_init_failure(files, handler, error_type, message_re):
    rec, box, code = init_failure("nodejs", files, handler)
    eq(rec["json"]["errorType"], error_type)
    match(message_re, rec["json"]["errorMessage"])
    eq(code, 129, "exit status")
    match(r"^%s\tundefined\tERROR\tUncaught Exception \t\{.*\"errorType\":\"%s\"" % (TS, re.escape(error_type)),
          box.all_output("stdout"), "init error log")
    return rec


@test
def node_init_syntax_error():
    node_init_failure({"index.js": "exports.handler = (e) => {\n"}, "index.handler",
                      "Runtime.UserCodeSyntaxError", r"^SyntaxError: ")


@test
def node_init_missing_module():
    node_init_failure({"other.js": ""}, "index.handler",
                      "Runtime.ImportModuleError", r"^Error: Cannot find module 'index'\nRequire stack:\n- ")


@test
def node_init_missing_handler():
    node_init_failure({"index.js": NODE_MAIN}, "index.nope",
                      "Runtime.HandlerNotFound", r"^index\.nope is undefined or not exported$")
    node_init_failure({"index.js": NODE_MAIN}, "index.notAFunction",
                      "Runtime.HandlerNotFound", r"^index\.notAFunction is not a function$")


@test
def node_init_malformed_handler():
    node_init_failure({"index.js": NODE_MAIN}, "index", "Runtime.MalformedHandlerName", r"^Bad handler index$")


@test
def node_init_exception_in_module():
    node_init_failure({"index.js": "throw new RangeError('init boom');\n"}, "index.handler",
                      "RangeError", r"^init boom$")


NODE_CRASH = """
    exports.handler = (event, context, callback) => {
      if (event.action === 'uncaught') setTimeout(() => { throw new Error('kaboom'); }, 0);
      if (event.action === 'rejection') Promise.reject(new Error('nope'));
    };
"""


@test
def node_uncaught_exception_reports_and_exits():
    box = Sandbox("nodejs", task_root({"index.js": NODE_CRASH}), "index.handler")
    r = box.invoke({"action": "uncaught"})
    eq((r["kind"], r["json"]["errorType"], r["json"]["errorMessage"]), ("error", "Error", "kaboom"))
    eq(box.wait_exit(), 129)


@test
def node_unhandled_rejection_reports_and_exits():
    box = Sandbox("nodejs", task_root({"index.js": NODE_CRASH}), "index.handler")
    r = box.invoke({"action": "rejection"})
    eq((r["kind"], r["json"]["errorType"], r["json"]["errorMessage"]),
       ("error", "Runtime.UnhandledPromiseRejection", "Error: nope"))
    eq(box.wait_exit(), 128)


# ---------------------------------------------------------------------------


def main():
    passed = failed = 0
    started = time.monotonic()
    try:
        for fn in TESTS:
            t0 = time.monotonic()
            try:
                fn()
            except Exception:
                failed += 1
                print("FAIL %s\n%s" % (fn.__name__, textwrap.indent(traceback.format_exc(), "    ")))
            else:
                passed += 1
                print("ok   %s (%.2f s)" % (fn.__name__, time.monotonic() - t0))
    finally:
        for box in SANDBOXES:
            box.close()
        shutil.rmtree(TMP, ignore_errors=True)
    print("(%.1f s)" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
