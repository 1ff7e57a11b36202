package lamina.runtime;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * A minimal HTTP/1.1 client for the Runtime API (2018-06-01) over a plain socket. It avoids
 * java.net.http and HttpURLConnection, whose class loading and helper threads cost start-up time
 * and memory. One connection per call: it is loopback traffic, and nothing has to detect
 * keep-alive connections the host closed while the sandbox was idle.
 */
final class RuntimeClient {

    static final String PREFIX = "/2018-06-01/runtime";
    static final String ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type";

    /** The Runtime API is unusable; the process cannot continue. */
    static final class ApiException extends IOException {
        private static final long serialVersionUID = 1L;

        ApiException(String message) {
            super(message);
        }

        ApiException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** A response: status, headers (lower-case names) and body. */
    static final class Response {
        final int status;
        final Map<String, String> headers;
        final byte[] body;

        Response(int status, Map<String, String> headers, byte[] body) {
            this.status = status;
            this.headers = headers;
            this.body = body;
        }

        String header(String name) {
            return headers.get(name.toLowerCase(Locale.ROOT));
        }
    }

    private final String host;
    private final int port;

    RuntimeClient(String address) {
        int colon = address.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException("AWS_LAMBDA_RUNTIME_API must be host:port, got '" + address + "'");
        }
        String h = address.substring(0, colon);
        if (h.startsWith("[") && h.endsWith("]")) {
            h = h.substring(1, h.length() - 1);
        }
        this.host = h;
        this.port = Integer.parseInt(address.substring(colon + 1));
    }

    Response next() throws IOException {
        Response r = call("GET", PREFIX + "/invocation/next", null, null);
        if (r.status != 200 || r.header("Lambda-Runtime-Aws-Request-Id") == null) {
            throw new ApiException("GET /invocation/next returned HTTP " + r.status);
        }
        return r;
    }

    void respond(String requestId, byte[] body) throws IOException {
        post(PREFIX + "/invocation/" + encode(requestId) + "/response", body, null);
    }

    void error(String requestId, byte[] body, String errorType) throws IOException {
        post(PREFIX + "/invocation/" + encode(requestId) + "/error", body, errorType);
    }

    void initError(byte[] body, String errorType) throws IOException {
        post(PREFIX + "/init/error", body, errorType);
    }

    private void post(String path, byte[] body, String errorType) throws IOException {
        String extra = null;
        if (errorType != null && isToken(errorType)) {
            extra = ERROR_TYPE_HEADER + ": " + errorType + "\r\n";
        }
        Response r = call("POST", path, body, extra);
        if (r.status >= 300) {
            // The host refused the document (e.g. too large); nothing better to do than say so.
            String text = new String(r.body, 0, Math.min(r.body.length, 200), StandardCharsets.UTF_8);
            Bootstrap.stderrLine("[ERROR] Runtime API rejected POST " + path + ": HTTP " + r.status + " " + text);
        }
    }

    /** Header values must be plain printable ASCII without spaces. */
    private static boolean isToken(String s) {
        if (s.isEmpty() || s.length() > 200) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c <= ' ' || c >= 0x7f) {
                return false;
            }
        }
        return true;
    }

    private static String encode(String segment) {
        StringBuilder sb = new StringBuilder();
        for (byte b : segment.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
                    || c == '.' || c == '~') {
                sb.append((char) c);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return sb.toString();
    }

    private Response call(String method, String path, byte[] body, String extraHeaders) throws IOException {
        try (Socket socket = new Socket()) {
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port));
            StringBuilder head = new StringBuilder(256);
            head.append(method).append(' ').append(path).append(" HTTP/1.1\r\n");
            head.append("Host: ").append(host).append(':').append(port).append("\r\n");
            head.append("User-Agent: lamina-java-runtime\r\n");
            head.append("Connection: close\r\n");
            if (body != null) {
                head.append("Content-Type: application/json\r\n");
                head.append("Content-Length: ").append(body.length).append("\r\n");
            }
            if (extraHeaders != null) {
                head.append(extraHeaders);
            }
            head.append("\r\n");
            OutputStream out = socket.getOutputStream();
            byte[] headBytes = head.toString().getBytes(StandardCharsets.UTF_8);
            if (body != null && body.length <= 64 * 1024) {
                byte[] all = new byte[headBytes.length + body.length];
                System.arraycopy(headBytes, 0, all, 0, headBytes.length);
                System.arraycopy(body, 0, all, headBytes.length, body.length);
                out.write(all);
            } else {
                out.write(headBytes);
                if (body != null) {
                    out.write(body);
                }
            }
            out.flush();
            return readResponse(new BufferedInputStream(socket.getInputStream(), 16 * 1024), method);
        } catch (ApiException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new ApiException(method + " " + path + " failed: " + e, e);
        }
    }

    private static Response readResponse(InputStream in, String method) throws IOException {
        String statusLine = readLine(in);
        while (statusLine.isEmpty()) {
            statusLine = readLine(in);
        }
        String[] parts = statusLine.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/")) {
            throw new ApiException("bad status line '" + statusLine + "'");
        }
        int status = Integer.parseInt(parts[1]);
        Map<String, String> headers = new TreeMap<>();
        while (true) {
            String line = readLine(in);
            if (line.isEmpty()) {
                break;
            }
            int colon = line.indexOf(':');
            if (colon > 0) {
                headers.put(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), line.substring(colon + 1).trim());
            }
        }
        if (status == 100) {
            return readResponse(in, method);
        }
        byte[] body;
        String te = headers.get("transfer-encoding");
        String cl = headers.get("content-length");
        if ("HEAD".equals(method) || status == 204 || status == 304) {
            body = new byte[0];
        } else if (te != null && te.toLowerCase(Locale.ROOT).contains("chunked")) {
            body = readChunked(in);
        } else if (cl != null) {
            int n = Integer.parseInt(cl.trim());
            body = in.readNBytes(n);
            if (body.length != n) {
                throw new EOFException("response body truncated");
            }
        } else {
            body = in.readAllBytes();
        }
        return new Response(status, headers, body);
    }

    private static byte[] readChunked(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        while (true) {
            String line = readLine(in);
            int semi = line.indexOf(';');
            int size = Integer.parseInt((semi >= 0 ? line.substring(0, semi) : line).trim(), 16);
            if (size == 0) {
                while (!readLine(in).isEmpty()) {
                    // trailers
                }
                return out.toByteArray();
            }
            byte[] chunk = in.readNBytes(size);
            if (chunk.length != size) {
                throw new EOFException("chunk truncated");
            }
            out.write(chunk);
            readLine(in);
        }
    }

    /** One CRLF- (or LF-) terminated line, decoded as UTF-8 (header values may carry JSON). */
    private static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(128);
        while (true) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException("connection closed by the Runtime API");
            }
            if (b == '\n') {
                break;
            }
            line.write(b);
        }
        byte[] bytes = line.toByteArray();
        int n = bytes.length;
        if (n > 0 && bytes[n - 1] == '\r') {
            n--;
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8);
    }
}
