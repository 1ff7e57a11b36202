package lamina.runtime;

import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOError;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Lamina's managed runtime for Java ({@code java17}). Started by the execution host (through
 * {@code /var/runtime/java/bootstrap.sh}, which sizes the JVM) as
 *
 * <pre>
 *   java [flags] -cp /var/runtime/java/lamina-java-runtime.jar lamina.runtime.Bootstrap    (cwd /var/task)
 * </pre>
 *
 * It loads the handler named by {@code _HANDLER} from {@code LAMBDA_TASK_ROOT} (classes at the
 * root plus {@code lib/*.jar}), then serves invocations through the Runtime API at
 * {@code AWS_LAMBDA_RUNTIME_API}, following shared/spec/programming-model.md and semantics.md ERR.
 * JDK standard library only.
 */
public final class Bootstrap {

    /** The process's stdout/stderr (UTF-8), kept even if user code replaces System.out/err. */
    static PrintStream stdout = System.out;
    static PrintStream stderr = System.err;

    /** {@link LambdaLogger}: one log event per call on stdout; newlines inside become CR. */
    static final LambdaLogger LOGGER = new LambdaLogger() {
        @Override
        public void log(String message) {
            logEvent(message == null ? "null" : message);
        }

        @Override
        public void log(byte[] message) {
            logEvent(message == null ? "null" : new String(message, StandardCharsets.UTF_8));
        }
    };

    private Bootstrap() {}

    public static void main(String[] args) {
        stdout = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        stderr = new PrintStream(new FileOutputStream(FileDescriptor.err), true, StandardCharsets.UTF_8);
        System.setOut(stdout);
        System.setErr(stderr);

        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (api == null || api.isEmpty()) {
            stderrLine("[ERROR] AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(2);
        }
        RuntimeClient client = new RuntimeClient(api);
        String taskRoot = System.getenv("LAMBDA_TASK_ROOT");
        if (taskRoot == null || taskRoot.isEmpty()) {
            taskRoot = "/var/task";
        }

        Handlers.Handler handler;
        try {
            ClassLoader loader = Handlers.userClassLoader(taskRoot);
            Thread.currentThread().setContextClassLoader(loader);
            handler = Handlers.load(System.getenv("_HANDLER"), loader);
        } catch (Throwable t) {
            Map<String, Object> error = errorDocument(t);
            logError(t, error);
            flushOutput();
            try {
                client.initError(Json.write(error).getBytes(StandardCharsets.UTF_8), (String) error.get("errorType"));
            } catch (Exception e) {
                stderrLine("[ERROR] Runtime API: " + e.getMessage());
            }
            System.exit(1);
            return;
        }

        try {
            while (true) {
                RuntimeClient.Response next = client.next();
                handle(client, handler, next);
            }
        } catch (RuntimeClient.ApiException e) {
            stderrLine("[ERROR] Runtime API: " + e.getMessage());
            System.exit(1);
        } catch (Throwable t) {
            stderrLine("[ERROR] runtime failure: " + t);
            System.exit(1);
        }
    }

    private static void handle(RuntimeClient client, Handlers.Handler handler, RuntimeClient.Response next)
            throws Exception {
        String requestId = next.header("Lambda-Runtime-Aws-Request-Id");
        String traceId = next.header("Lambda-Runtime-Trace-Id");
        // The environment cannot change; the X-Ray SDK for Java reads this property as well.
        if (traceId != null) {
            System.setProperty("com.amazonaws.xray.traceHeader", traceId);
        } else {
            System.clearProperty("com.amazonaws.xray.traceHeader");
        }
        byte[] response;
        try {
            LambdaContext context = new LambdaContext(next);
            response = handler.invoke(next.body, context);
        } catch (Throwable t) {
            byte[] body;
            String type;
            try {
                Map<String, Object> error = errorDocument(t);
                type = (String) error.get("errorType");
                logError(t, error);
                body = Json.write(error).getBytes(StandardCharsets.UTF_8);
            } catch (Throwable inner) {
                // e.g. OutOfMemoryError again while formatting: send what needs no allocation of note.
                type = t.getClass().getName();
                body = ("{\"errorMessage\":\"" + type + "\",\"errorType\":\"" + type + "\"}")
                        .getBytes(StandardCharsets.UTF_8);
            }
            flushOutput();
            client.error(requestId, body, type);
            if (t instanceof VirtualMachineError || t instanceof IOError) {
                stderrLine("[ERROR] fatal error, the runtime exits: " + t);
                System.exit(1);
            }
            return;
        }
        flushOutput();
        client.respond(requestId, response);
    }

    // ---------------------------------------------------------------------------------------
    // Logging
    // ---------------------------------------------------------------------------------------

    private static void logEvent(String message) {
        String m = message.endsWith("\n") ? message.substring(0, message.length() - 1) : message;
        // One event per call: the host splits events at LF, so inner newlines travel as CR (as AWS's
        // stdout logging does).
        m = m.replace("\r\n", "\r").replace('\n', '\r');
        synchronized (stdout) {
            stdout.print(m);
            stdout.print('\n');
            stdout.flush();
        }
    }

    static void stderrLine(String line) {
        synchronized (stderr) {
            stderr.print(line);
            stderr.print('\n');
            stderr.flush();
        }
    }

    /**
     * The host credits all output written before the response/error POST to this invocation, so
     * nothing may linger in a buffer (user code may have installed its own System.out/err).
     */
    static void flushOutput() {
        for (PrintStream s : new PrintStream[] {System.out, System.err, stdout, stderr}) {
            try {
                s.flush();
            } catch (RuntimeException e) {
                // a user stream that cannot flush is not our failure
            }
        }
    }

    /** Logs an error like the AWS Java runtime: "message: type" then the stack trace, line by line. */
    private static void logError(Throwable t, Map<String, Object> error) {
        StringBuilder sb = new StringBuilder();
        sb.append(error.get("errorMessage")).append(": ").append(error.get("errorType")).append('\n');
        Throwable cur = t instanceof Handlers.Fault ? t.getCause() : t;
        String prefix = "";
        int guard = 0;
        if (cur == null) {
            sb.setLength(sb.length() - 1);
        }
        while (cur != null && guard++ < 10) {
            sb.append(prefix).append(cur).append('\n');
            for (Object frame : frames(cur)) {
                sb.append("\tat ").append(frame).append('\n');
            }
            prefix = "Caused by: ";
            if (cur.getCause() == cur) {
                break;
            }
            cur = cur.getCause();
        }
        String text = sb.toString();
        synchronized (stderr) {
            stderr.print(text.endsWith("\n") ? text : text + "\n");
            stderr.flush();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Error documents
    // ---------------------------------------------------------------------------------------

    /**
     * {@code {"errorMessage", "errorType": fully-qualified class, "stackTrace": [frames], "cause": {...}}};
     * runtime-detected faults carry their own type and message.
     */
    static Map<String, Object> errorDocument(Throwable t) {
        if (t instanceof Handlers.Fault) {
            Handlers.Fault f = (Handlers.Fault) t;
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("errorMessage", f.getMessage());
            m.put("errorType", f.errorType);
            Throwable c = f.getCause();
            m.put("stackTrace", c == null ? new ArrayList<>() : frames(c));
            if (c != null && !f.errorType.equals(c.getClass().getName())) {
                m.put("cause", throwableDocument(c, 1));
            } else if (c != null && c.getCause() != null && c.getCause() != c) {
                m.put("cause", throwableDocument(c.getCause(), 1));
            }
            return m;
        }
        return throwableDocument(t, 0);
    }

    private static Map<String, Object> throwableDocument(Throwable t, int depth) {
        Map<String, Object> m = new LinkedHashMap<>();
        String message = t.getMessage();
        m.put("errorMessage", message != null ? message : t.getClass().getName());
        m.put("errorType", t.getClass().getName());
        m.put("stackTrace", frames(t));
        Throwable cause = t.getCause();
        if (cause != null && cause != t && depth < 10) {
            m.put("cause", throwableDocument(cause, depth + 1));
        }
        return m;
    }

    /** Frame strings ("example.Hello.handler(Hello.java:9)") without the runtime's own frames. */
    static List<Object> frames(Throwable t) {
        List<Object> out = new ArrayList<>();
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith("lamina.runtime.")) {
                continue;
            }
            out.add(e.toString());
        }
        return out;
    }
}
