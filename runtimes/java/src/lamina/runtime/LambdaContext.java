package lamina.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import java.util.LinkedHashMap;
import java.util.Map;

/** The {@link Context} of one invocation, built from the {@code /next} response headers and the environment. */
final class LambdaContext implements Context {

    private final String requestId;
    private final String invokedFunctionArn;
    private final long deadlineMs;
    private final CognitoIdentity identity;
    private final ClientContext clientContext;

    LambdaContext(RuntimeClient.Response next) {
        this.requestId = next.header("Lambda-Runtime-Aws-Request-Id");
        this.invokedFunctionArn = next.header("Lambda-Runtime-Invoked-Function-Arn");
        long deadline = 0;
        String d = next.header("Lambda-Runtime-Deadline-Ms");
        if (d != null) {
            try {
                deadline = Long.parseLong(d.trim());
            } catch (NumberFormatException e) {
                deadline = 0;
            }
        }
        this.deadlineMs = deadline;
        this.identity = parseIdentity(next.header("Lambda-Runtime-Cognito-Identity"));
        this.clientContext = parseClientContext(next.header("Lambda-Runtime-Client-Context"));
    }

    @Override
    public String getAwsRequestId() {
        return requestId;
    }

    @Override
    public String getLogGroupName() {
        return System.getenv("AWS_LAMBDA_LOG_GROUP_NAME");
    }

    @Override
    public String getLogStreamName() {
        return System.getenv("AWS_LAMBDA_LOG_STREAM_NAME");
    }

    @Override
    public String getFunctionName() {
        return System.getenv("AWS_LAMBDA_FUNCTION_NAME");
    }

    @Override
    public String getFunctionVersion() {
        return System.getenv("AWS_LAMBDA_FUNCTION_VERSION");
    }

    @Override
    public String getInvokedFunctionArn() {
        return invokedFunctionArn;
    }

    @Override
    public CognitoIdentity getIdentity() {
        return identity;
    }

    @Override
    public ClientContext getClientContext() {
        return clientContext;
    }

    @Override
    public int getRemainingTimeInMillis() {
        long left = deadlineMs - System.currentTimeMillis();
        return (int) Math.max(0, Math.min(left, Integer.MAX_VALUE));
    }

    @Override
    public int getMemoryLimitInMB() {
        return memoryLimitInMB();
    }

    @Override
    public LambdaLogger getLogger() {
        return Bootstrap.LOGGER;
    }

    @Override
    public String toString() {
        return "LambdaContext[requestId=" + requestId + ", functionName=" + getFunctionName() + ", functionVersion="
                + getFunctionVersion() + ", invokedFunctionArn=" + invokedFunctionArn + ", memoryLimitInMB="
                + getMemoryLimitInMB() + "]";
    }

    static int memoryLimitInMB() {
        String m = System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
        if (m == null) {
            return 0;
        }
        try {
            return Integer.parseInt(m.trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    // ---------------------------------------------------------------------------------------

    /** A header's JSON object, or null when the header is absent or not an object. */
    @SuppressWarnings("unchecked")
    private static Map<String, Object> jsonObject(String header, String what) {
        if (header == null || header.isEmpty()) {
            return null;
        }
        Object v;
        try {
            v = Json.parse(header);
        } catch (Json.ParseException e) {
            Bootstrap.stderrLine("[WARN] Unable to parse " + what + " JSON: " + e.getMessage());
            return null;
        }
        return v instanceof Map ? (Map<String, Object>) v : null;
    }

    private static String str(Map<String, Object> m, String key) {
        Object v = m == null ? null : m.get(key);
        return v == null ? null : v instanceof String ? (String) v : Json.write(v);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, String> strings(Object v) {
        Map<String, String> out = new LinkedHashMap<>();
        if (v instanceof Map) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                Object x = e.getValue();
                out.put(e.getKey(), x == null ? null : x instanceof String ? (String) x : Json.write(x));
            }
        }
        return out;
    }

    private static CognitoIdentity parseIdentity(String header) {
        Map<String, Object> m = jsonObject(header, "Cognito Identity");
        if (m == null) {
            return null;
        }
        String id = str(m, "cognitoIdentityId");
        String pool = str(m, "cognitoIdentityPoolId");
        return new Identity(id, pool);
    }

    @SuppressWarnings("unchecked")
    private static ClientContext parseClientContext(String header) {
        Map<String, Object> m = jsonObject(header, "Client Context");
        if (m == null) {
            return null;
        }
        Object c = m.get("client");
        AppClient client = null;
        if (c instanceof Map) {
            Map<String, Object> cm = (Map<String, Object>) c;
            client = new AppClient(str(cm, "installation_id"), str(cm, "app_title"), str(cm, "app_version_name"),
                    str(cm, "app_version_code"), str(cm, "app_package_name"));
        }
        Object custom = m.containsKey("custom") ? m.get("custom") : m.get("Custom");
        return new AppClientContext(client, strings(custom), strings(m.get("env")));
    }

    static final class Identity implements CognitoIdentity {
        private final String identityId;
        private final String identityPoolId;

        Identity(String identityId, String identityPoolId) {
            this.identityId = identityId;
            this.identityPoolId = identityPoolId;
        }

        @Override
        public String getIdentityId() {
            return identityId;
        }

        @Override
        public String getIdentityPoolId() {
            return identityPoolId;
        }

        @Override
        public String toString() {
            return "CognitoIdentity[identityId=" + identityId + ", identityPoolId=" + identityPoolId + "]";
        }
    }

    static final class AppClient implements Client {
        private final String installationId;
        private final String appTitle;
        private final String appVersionName;
        private final String appVersionCode;
        private final String appPackageName;

        AppClient(String installationId, String appTitle, String appVersionName, String appVersionCode,
                String appPackageName) {
            this.installationId = installationId;
            this.appTitle = appTitle;
            this.appVersionName = appVersionName;
            this.appVersionCode = appVersionCode;
            this.appPackageName = appPackageName;
        }

        @Override
        public String getInstallationId() {
            return installationId;
        }

        @Override
        public String getAppTitle() {
            return appTitle;
        }

        @Override
        public String getAppVersionName() {
            return appVersionName;
        }

        @Override
        public String getAppVersionCode() {
            return appVersionCode;
        }

        @Override
        public String getAppPackageName() {
            return appPackageName;
        }
    }

    static final class AppClientContext implements ClientContext {
        private final Client client;
        private final Map<String, String> custom;
        private final Map<String, String> environment;

        AppClientContext(Client client, Map<String, String> custom, Map<String, String> environment) {
            this.client = client;
            this.custom = custom;
            this.environment = java.util.Collections.unmodifiableMap(environment);
        }

        @Override
        public Client getClient() {
            return client;
        }

        @Override
        public Map<String, String> getCustom() {
            return custom;
        }

        @Override
        public Map<String, String> getEnvironment() {
            return environment;
        }
    }
}
