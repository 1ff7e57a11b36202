"""Lamina managed runtime for Python (python3.N).

Started by the execution host as

    /usr/bin/python3.11 -u -S /var/runtime/python/bootstrap.py      (cwd: /var/task)

(``bootstrap.py`` only imports this module, whose bytecode is cached.) It loads the handler named
by ``_HANDLER`` from ``LAMBDA_TASK_ROOT`` and then serves
invocations through the Lambda Runtime API (2018-06-01) at ``AWS_LAMBDA_RUNTIME_API``,
following the contract of shared/spec/programming-model.md and semantics.md (ERR, LOGS).
Standard library only: the sandbox sees nothing but the host's Python installation.
"""

import _socket
import os
import sys
import time

try:
    import _json  # the C accelerator alone: see json_loads
except ImportError:
    _json = None

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# The request id the logging formatter stamps on records; "" outside an invocation.
_request_id = ""


class RuntimeAPIError(Exception):
    """The host's Runtime API is unusable; the sandbox cannot go on."""


class HandlerFault(Exception):
    """A failure the runtime detects itself (AWS's ``Runtime.*`` error types)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------
#
# `import json` costs 5-13 ms of every cold start (json.decoder imports `re`, which imports enum,
# functools, ...), more than everything else the runtime does before the handler runs. The C
# accelerator `_json` that json itself uses does the actual work; these call it directly and fall
# back to `json` for what it leaves to Python (error messages, unusual input, other interpreters).

_JSON_WS = " \t\n\r"
_scanner = None


def _slow_json():
    import json

    return json


class _ScanContext:
    # The attributes json.JSONDecoder hands to _json.make_scanner, with json.loads' defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def json_loads(data):
    """json.loads for a str or UTF-8 bytes."""
    global _scanner
    if _json is None:
        return _slow_json().loads(data)
    if _scanner is None:
        try:
            _scanner = _json.make_scanner(_ScanContext())
        except (TypeError, AttributeError):
            return _slow_json().loads(data)
    text = data
    if isinstance(data, (bytes, bytearray)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _slow_json().loads(data)
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        value, end = _scanner(text, start)
    except StopIteration:
        return _slow_json().loads(data)  # raises json's own "Expecting value" error
    if text[end:].strip(_JSON_WS):
        return _slow_json().loads(data)  # raises "Extra data"
    return value


def _not_serializable(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def json_dumps(value, default=None):
    """json.dumps(value, default=default) with json's default separators and ASCII escaping."""
    default = default or _not_serializable
    if _json is not None:
        try:
            encode = _json.make_encoder(
                {}, default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)
        except (TypeError, AttributeError):
            pass
        else:
            return "".join(encode(value, 0))
    return _slow_json().dumps(value, default=default)


# ---------------------------------------------------------------------------
# Runtime API client
# ---------------------------------------------------------------------------


class _Headers(dict):
    """Response headers, looked up case-insensitively."""

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)


class RuntimeAPI:
    """Talks to the host over one kept-alive HTTP/1.1 connection.

    A hand-written client rather than http.client: importing http.client (ssl, email) costs about
    15 ms of every cold start, and this protocol needs only Content-Length bodies. A connection the
    host closed while the sandbox was idle is detected on use and replaced once."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.close()
        # The C module, not `socket`: its Python wrapper (enum and friends) costs ~3 ms of start-up.
        # The host name as bytes: a str is IDNA-encoded first, which imports encodings.idna,
        # stringprep and re (~8 ms of a cold start).
        host, port = self.target
        family, kind, proto, _, address = _socket.getaddrinfo(
            host.encode("ascii", "replace"), port, 0, _socket.SOCK_STREAM)[0]
        self.sock = _socket.socket(family, kind, proto)
        try:
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            self.sock = None
            raise
        self.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the Runtime API")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed by the Runtime API")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_to_eof(self):
        parts = [self.buf]
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            parts.append(chunk)
        self.buf = b""
        return b"".join(parts)

    def _exchange(self, method, path, body, headers):
        lines = ["%s %s%s HTTP/1.1" % (method, API_PREFIX, path), "Host: %s:%d" % self.target]
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        if body is not None or method == "POST":
            lines.append("Content-Length: %d" % len(body or b""))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        status = int(parts[1])
        resp_headers = _Headers()
        for line in head[1:]:
            name, _, value = line.partition(":")
            resp_headers[name.strip().lower()] = value.strip()
        closing = resp_headers.get("Connection", "").lower() == "close" or parts[0] == "HTTP/1.0"
        if resp_headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                data += self._read_exact(size)
                self._read_exact(2)
        elif resp_headers.get("Content-Length") is not None:
            data = self._read_exact(int(resp_headers.get("Content-Length")))
        else:
            data, closing = self._read_to_eof(), True
        if closing:
            self.close()
        return status, resp_headers, data

    def _call(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            fresh = self.sock is None
            if fresh:
                try:
                    self._connect()
                except OSError as exc:
                    raise RuntimeAPIError("%s %s failed: %s" % (method, path, exc)) from exc
            try:
                return self._exchange(method, path, body, headers)
            except (OSError, ValueError, IndexError) as exc:
                self.close()
                # Only a reused connection may have gone stale; a fresh one failing is real.
                if fresh or attempt == 2:
                    raise RuntimeAPIError("%s %s failed: %s" % (method, path, exc)) from exc

    def next(self):
        status, headers, body = self._call("GET", "/invocation/next")
        if status != 200 or not headers.get("Lambda-Runtime-Aws-Request-Id"):
            raise RuntimeAPIError("GET /invocation/next returned HTTP %d" % status)
        return headers, body

    def _post(self, path, payload, error_type=None):
        headers = {"Content-Type": "application/json"}
        if error_type and error_type.isascii() and error_type.isprintable() and " " not in error_type:
            headers[ERROR_TYPE_HEADER] = error_type  # header values must be plain ASCII
        status, _, body = self._call("POST", path, payload, headers)
        if status >= 300:
            # The host refused the document (e.g. too large); nothing better to do than say so.
            _write(sys.stderr, "[ERROR] Runtime API rejected POST %s: HTTP %d %s\n"
                   % (path, status, body[:200].decode("utf-8", "replace")))

    def respond(self, request_id, payload):
        self._post("/invocation/%s/response" % _quote(request_id), payload)

    def error(self, request_id, error):
        self._post("/invocation/%s/error" % _quote(request_id), _error_json(error), error["errorType"])

    def init_error(self, error):
        self._post("/init/error", _error_json(error), error["errorType"])


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(request_id):
    return "".join(chr(b) if b in _UNRESERVED else "%%%02X" % b for b in request_id.encode("utf-8"))


def _error_json(error):
    return json_dumps(error).encode("utf-8")


# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------


def _write(stream, text):
    stream.write(text)
    stream.flush()


def _setup_logging(logging):
    """Gives the root logger Lambda's format and default level (WARNING)."""

    class _LambdaLogHandler(logging.Handler):
        """``[LEVEL]\\t<time>Z\\t<request id>\\t<message>``, to sys.stdout looked up at emit time, so user
        code that rebinds sys.stdout still reaches the captured stream, as with print."""

        def emit(self, record):
            try:
                _write(sys.stdout, self.format(record) + "\n")
            except Exception:
                self.handleError(record)

    class _RequestIdFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _request_id
            return True

    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler = _LambdaLogHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # AWS default; users raise it with setLevel(INFO)


class _LoggingOnImport:
    """Configures `logging` the moment anything imports it.

    Importing logging (and the traceback/threading/string modules it pulls in) costs ~5 ms; a
    function that never logs should not pay it on every cold start, and one that does sees a
    root logger already set up when its own `import logging` returns."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _setup_logging(module)

        spec.loader.exec_module = exec_module
        return spec


def _log_error(error):
    """Write an error as one record to stderr, shaped like the AWS runtime's log line."""
    lines = ["[ERROR] %s: %s" % (error["errorType"], error["errorMessage"])]
    if error.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend(element.splitlines())
    _write(sys.stderr, "\n".join(lines) + "\n")


def _flush_output():
    # The host attributes output to an invocation by ordering: whatever was written before
    # the response/error POST belongs to it, so nothing may linger in a buffer.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def _make_error(error_type, message, trace, request_id=""):
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace,
    }


def _user_frames(tb):
    """Formatted traceback frames without the runtime's own leading frames.

    Frames are reduced to (file, line, function, source) before formatting so Python 3.11's
    column carets stay out of the payload, matching the AWS runtime's strings."""
    import traceback  # only failing invocations pay for it

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    while frames and _is_runtime_frame(frames[0][0]):
        frames.pop(0)
    return traceback.format_list(frames)


_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))


def _is_runtime_frame(filename):
    # The runtime itself, and the import machinery between it and a module that failed at import.
    return filename.startswith("<frozen importlib") or os.path.dirname(os.path.abspath(filename)) == _RUNTIME_DIR


def _exception_error(exc, request_id=""):
    if isinstance(exc, HandlerFault):
        return _make_error(exc.error_type, exc.message, exc.trace, request_id)
    return _make_error(type(exc).__name__, str(exc), _user_frames(exc.__traceback__), request_id)


# ---------------------------------------------------------------------------
# Handler loading (init phase)
# ---------------------------------------------------------------------------


def load_handler(handler_name):
    """Import the handler module and return the function, or raise.

    Supports ``file.func``, ``dir/file.func`` and dotted ``pkg.mod.func``; the module is the
    text before the last dot, with slashes turned into package separators."""
    try:
        modname, fname = handler_name.rsplit(".", 1)
    except ValueError as exc:
        raise HandlerFault("Runtime.MalformedHandlerName",
                           "Bad handler '%s': %s" % (handler_name, exc))
    if modname.split(".")[0] in sys.builtin_module_names:
        raise HandlerFault("Runtime.BuiltInModuleConflict",
                           "Cannot use built-in module %s as a handler module" % modname)
    dotted = modname.replace("/", ".")
    try:
        # __import__ rather than importlib.import_module: importing importlib costs ~1 ms.
        __import__(dotted)
        module = sys.modules[dotted]
    except ImportError as exc:
        raise HandlerFault("Runtime.ImportModuleError",
                           "Unable to import module '%s': %s" % (modname, exc))
    except SyntaxError as exc:
        trace = ['  File "%s" Line %s\n    %s' % (exc.filename, exc.lineno, (exc.text or "").strip())]
        raise HandlerFault("Runtime.UserCodeSyntaxError",
                           "Syntax error in module '%s': %s" % (modname, exc), trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise HandlerFault("Runtime.HandlerNotFound",
                           "Handler '%s' missing on module '%s'" % (fname, modname))


# ---------------------------------------------------------------------------
# Context object
# ---------------------------------------------------------------------------


class _Fields:
    """A plain attribute bag filled from a JSON object; absent keys read as None."""

    _fields = ()

    def __init__(self, values):
        for name in self._fields:
            setattr(self, name, values.get(name))

    def __repr__(self):
        inner = ",".join("%s=%r" % (n, getattr(self, n)) for n in self._fields)
        return "%s([%s])" % (type(self).__name__, inner)


class CognitoIdentity(_Fields):
    _fields = ("cognito_identity_id", "cognito_identity_pool_id")


class Client(_Fields):
    _fields = ("installation_id", "app_title", "app_version_name",
               "app_version_code", "app_package_name")


class ClientContext(_Fields):
    _fields = ("client", "custom", "env")

    def __init__(self, values):
        super().__init__(values)
        if isinstance(self.client, dict):
            self.client = Client(self.client)


def _parse_json_header(value, name):
    try:
        return json_loads(value)
    except ValueError as exc:
        raise HandlerFault("Runtime.LambdaContextUnmarshalError",
                           "Unable to parse %s JSON: %s" % (name, exc))


class LambdaContext:
    def __init__(self, request_id, headers):
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)

        identity = headers.get("Lambda-Runtime-Cognito-Identity")
        identity = _parse_json_header(identity, "Cognito Identity") if identity else {}
        self.identity = CognitoIdentity({
            "cognito_identity_id": identity.get("cognitoIdentityId"),
            "cognito_identity_pool_id": identity.get("cognitoIdentityPoolId"),
        })
        client_context = headers.get("Lambda-Runtime-Client-Context")
        self.client_context = (ClientContext(_parse_json_header(client_context, "Client Context"))
                               if client_context else None)

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)


# ---------------------------------------------------------------------------
# Invocation loop
# ---------------------------------------------------------------------------


def _json_default(value):
    # DynamoDB (boto3) hands out Decimal; AWS's marshaller accepts it, so do we.
    import decimal  # only results that need it pay for the import

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def handle_invocation(api, handler, headers, body):
    global _request_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
    _request_id = request_id
    trace_id = headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    try:
        context = LambdaContext(request_id, headers)
        try:
            event = json_loads(body) if body else None
        except ValueError as exc:
            raise HandlerFault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % exc)
        result = handler(event, context)
        try:
            payload = json_dumps(result, default=_json_default).encode("utf-8")
        except Exception as exc:
            raise HandlerFault("Runtime.MarshalError", "Unable to marshal response: %s" % exc)
    except Exception as exc:
        error = _exception_error(exc, request_id)
        _log_error(error)
        _flush_output()
        api.error(request_id, error)
        return
    _flush_output()
    api.respond(request_id, payload)


def _without_site():
    """What `site` would have given user code, for an interpreter started with -S.

    The host starts Python with -S because `site` processes every .pth file of every
    site-packages directory at start-up (3-6 ms of each cold start here, and arbitrary code).
    User code still finds the interpreter's installed packages and the exit()/quit() builtins;
    .pth files are not processed (documented in docs/runtimes.md)."""
    version = "%d.%d" % sys.version_info[:2]
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix)):
        # Debian's layout first (site.getsitepackages() order there), then the upstream one.
        for path in (prefix + "/local/lib/python%s/dist-packages" % version,
                     prefix + "/lib/python3/dist-packages",
                     prefix + "/lib/python%s/dist-packages" % version,
                     prefix + "/lib/python%s/site-packages" % version):
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
    import builtins

    if not hasattr(builtins, "exit"):
        def exit(code=None):
            raise SystemExit(code)

        builtins.exit = builtins.quit = exit


# Where the execution host mounts boto3 and its dependencies (scripts/install-runtime-sdks.sh).
_SDK_DIR = "/var/sdk/python"


def _add_sdk():
    """Offers the host's boto3 the way AWS's runtimes do (docs/runtimes.md): after the task root,
    so that a function's own copy wins, and before the interpreter's site-packages."""
    if not os.path.isdir(_SDK_DIR):
        return
    for i, path in enumerate(sys.path):
        if i > 0 and path.endswith(("-packages", "-packages/")):
            sys.path.insert(i, _SDK_DIR)
            return
    sys.path.append(_SDK_DIR)


def main():
    # Lambda's streams are UTF-8 whatever locale the sandbox has (LANG may name one that is
    # not installed); never let an unencodable character turn a print into an exception.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")
    api = RuntimeAPI(os.environ["AWS_LAMBDA_RUNTIME_API"])
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    # The runtime's own directory must not shadow user modules, the task root must be first.
    if sys.path and sys.path[0] == _RUNTIME_DIR:
        sys.path.pop(0)
    sys.path.insert(0, task_root)
    if sys.flags.no_site:
        _without_site()
    _add_sdk()
    if "logging" in sys.modules:
        _setup_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingOnImport())

    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exc:
        error = _exception_error(exc)
        _log_error(error)
        _flush_output()
        try:
            api.init_error(error)
        except RuntimeAPIError as api_exc:
            _write(sys.stderr, "[ERROR] Runtime API: %s\n" % api_exc)
        sys.exit(1)

    try:
        while True:
            headers, body = api.next()
            handle_invocation(api, handler, headers, body)
    except RuntimeAPIError as exc:
        _write(sys.stderr, "[ERROR] Runtime API: %s\n" % exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
