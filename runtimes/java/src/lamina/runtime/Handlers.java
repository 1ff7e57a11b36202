package lamina.runtime;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Loading the user's handler (init phase) and calling it (per invocation). */
final class Handlers {

    private Handlers() {}

    /** A failure the runtime detects itself, reported with a fixed type and message. */
    static final class Fault extends Exception {
        private static final long serialVersionUID = 1L;
        final String errorType;

        Fault(String errorType, String message, Throwable cause) {
            super(message, cause);
            this.errorType = errorType;
        }
    }

    /** A loaded handler. */
    interface Handler {
        /** Runs one invocation; returns the response body. Exceptions are the function's errors. */
        byte[] invoke(byte[] event, Context context) throws Throwable;
    }

    private static final byte[] NULL = "null".getBytes(StandardCharsets.US_ASCII);

    // ---------------------------------------------------------------------------------------
    // Class loading
    // ---------------------------------------------------------------------------------------

    /** The task root (classes and resources at its root) followed by every {@code lib/*.jar}, sorted. */
    static ClassLoader userClassLoader(String taskRoot) {
        List<URL> urls = new ArrayList<>();
        File root = new File(taskRoot);
        try {
            urls.add(root.toURI().toURL());
            File[] jars = new File(root, "lib").listFiles((d, n) -> n.endsWith(".jar"));
            if (jars != null) {
                Arrays.sort(jars);
                for (File jar : jars) {
                    urls.add(jar.toURI().toURL());
                }
            }
        } catch (MalformedURLException e) {
            throw new IllegalStateException(e);
        }
        // Unnamed, so stack frames print as "example.Hello.handler(Hello.java:9)". The parent holds
        // the runtime and the com.amazonaws.services.lambda.runtime API, which thus wins over a copy
        // of aws-lambda-java-core packaged with the function.
        return new URLClassLoader(urls.toArray(new URL[0]), Bootstrap.class.getClassLoader());
    }

    // ---------------------------------------------------------------------------------------
    // Handler resolution
    // ---------------------------------------------------------------------------------------

    /** Resolves {@code package.Class::method}, {@code package.Class:method} or {@code package.Class}. */
    static Handler load(String handler, ClassLoader loader) throws Throwable {
        if (handler == null || handler.trim().isEmpty()) {
            throw new Fault("java.lang.IllegalArgumentException", "Handler not set (_HANDLER is empty)", null);
        }
        handler = handler.trim();
        String className = handler;
        String methodName = null;
        int sep = handler.indexOf("::");
        if (sep >= 0) {
            className = handler.substring(0, sep);
            methodName = handler.substring(sep + 2);
        } else if ((sep = handler.indexOf(':')) >= 0) {
            className = handler.substring(0, sep);
            methodName = handler.substring(sep + 1);
        }
        if (className.isEmpty() || (methodName != null && methodName.isEmpty())) {
            throw new Fault("java.lang.IllegalArgumentException",
                    "Invalid handler '" + handler + "': expected package.Class::method or package.Class", null);
        }
        Class<?> cls;
        try {
            cls = Class.forName(className, true, loader);
        } catch (ClassNotFoundException e) {
            throw new Fault("java.lang.ClassNotFoundException", "Class not found: " + className, e);
        } catch (NoClassDefFoundError e) {
            // e.g. a wrongly-cased name on a case-insensitive lookup, or a missing dependency.
            throw new Fault("java.lang.NoClassDefFoundError",
                    "Class not found: " + className + " (" + e.getMessage() + ")", e);
        }
        if (methodName == null) {
            if (RequestStreamHandler.class.isAssignableFrom(cls)) {
                RequestStreamHandler h = (RequestStreamHandler) instantiate(cls);
                return (event, context) -> {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    h.handleRequest(new ByteArrayInputStream(event), out, context);
                    return out.toByteArray();
                };
            }
            if (RequestHandler.class.isAssignableFrom(cls)) {
                @SuppressWarnings("unchecked")
                RequestHandler<Object, Object> h = (RequestHandler<Object, Object>) instantiate(cls);
                Type input = typeArgument(cls, RequestHandler.class, 0);
                return (event, context) -> serialize(h.handleRequest(deserialize(event, input), context));
            }
            methodName = "handleRequest";
        }
        return methodHandler(cls, methodName);
    }

    private static Object instantiate(Class<?> cls) throws Throwable {
        if (cls.isInterface() || Modifier.isAbstract(cls.getModifiers())) {
            throw new Fault("java.lang.InstantiationException",
                    "Class " + cls.getName() + " is abstract and cannot be instantiated", null);
        }
        Constructor<?> k;
        try {
            k = cls.getDeclaredConstructor();
        } catch (NoSuchMethodException e) {
            throw new Fault("java.lang.NoSuchMethodException",
                    "Class " + cls.getName() + " has no public zero-argument constructor", e);
        }
        try {
            k.setAccessible(true);
            return k.newInstance();
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    /** A plain method: the one with the most parameters; on a tie, the one ending in Context. */
    private static Handler methodHandler(Class<?> cls, String name) throws Throwable {
        Method best = null;
        for (Method m : cls.getMethods()) {
            if (!m.getName().equals(name) || m.isBridge() || m.isSynthetic() || m.getParameterCount() > 3) {
                continue;
            }
            if (best == null || m.getParameterCount() > best.getParameterCount()
                    || (m.getParameterCount() == best.getParameterCount() && endsWithContext(m)
                            && !endsWithContext(best))) {
                best = m;
            }
        }
        if (best == null) {
            throw new Fault("java.lang.NoSuchMethodException", "No public method named " + name
                    + " with appropriate method signature found on class " + cls.getName(), null);
        }
        Method m = best;
        Class<?>[] p = m.getParameterTypes();
        Type[] g = m.getGenericParameterTypes();
        Object target = Modifier.isStatic(m.getModifiers()) ? null : instantiate(cls);
        try {
            m.setAccessible(true); // a public method of a non-public class
        } catch (RuntimeException e) {
            // not fatal: invoke() reports the access problem if there is one
        }
        boolean stream = p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class;
        if (stream) {
            if (p.length == 3 && p[2] != Context.class) {
                throw badSignature(cls, m);
            }
            boolean withContext = p.length == 3;
            return (event, context) -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                Object[] args = withContext
                        ? new Object[] {new ByteArrayInputStream(event), out, context}
                        : new Object[] {new ByteArrayInputStream(event), out};
                call(m, target, args);
                return out.toByteArray();
            };
        }
        if (p.length == 3 || (p.length == 2 && p[1] != Context.class)) {
            throw badSignature(cls, m);
        }
        boolean voidResult = m.getReturnType() == void.class;
        if (p.length == 0) {
            return (event, context) -> result(call(m, target, new Object[0]), voidResult);
        }
        if (p.length == 1 && p[0] == Context.class) {
            return (event, context) -> result(call(m, target, new Object[] {context}), voidResult);
        }
        Type input = g[0];
        boolean rawInput = p[0] == InputStream.class;
        boolean withContext = p.length == 2;
        return (event, context) -> {
            Object in = rawInput ? new ByteArrayInputStream(event) : deserialize(event, input);
            Object[] args = withContext ? new Object[] {in, context} : new Object[] {in};
            return result(call(m, target, args), voidResult);
        };
    }

    private static Fault badSignature(Class<?> cls, Method m) {
        return new Fault("java.lang.NoSuchMethodException", "Handler method " + cls.getName() + "::" + m.getName()
                + " must take (input[, Context]) or (InputStream, OutputStream[, Context]), not "
                + Arrays.toString(m.getParameterTypes()), null);
    }

    private static boolean endsWithContext(Method m) {
        Class<?>[] p = m.getParameterTypes();
        return p.length > 0 && p[p.length - 1] == Context.class;
    }

    private static Object call(Method m, Object target, Object[] args) throws Throwable {
        try {
            return m.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static byte[] result(Object value, boolean voidResult) throws Fault {
        return voidResult ? NULL : serialize(value);
    }

    // ---------------------------------------------------------------------------------------
    // (De)serialisation
    // ---------------------------------------------------------------------------------------

    static Object deserialize(byte[] event, Type type) throws Fault {
        if (event == null || event.length == 0) {
            return Mapper.fromTree(null, type);
        }
        Object tree;
        try {
            tree = Json.parse(event);
        } catch (Json.ParseException e) {
            throw new Fault("java.lang.RuntimeException", "An error occurred during JSON parsing", e);
        }
        try {
            return Mapper.fromTree(tree, type);
        } catch (Mapper.MappingException e) {
            throw new Fault("java.lang.RuntimeException", "An error occurred during JSON parsing", e);
        }
    }

    static byte[] serialize(Object value) throws Fault {
        try {
            return Mapper.toJson(value).getBytes(StandardCharsets.UTF_8);
        } catch (Mapper.MappingException e) {
            throw new Fault("Runtime.MarshalError", "Unable to marshal response: " + e.getMessage(), e);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Generic type arguments
    // ---------------------------------------------------------------------------------------

    /** The actual type argument {@code index} of {@code target} as implemented by {@code cls} (Object if unknown). */
    static Type typeArgument(Class<?> cls, Class<?> target, int index) {
        Type t = find(cls, target, index, new HashMap<>());
        if (t == null || t instanceof TypeVariable) {
            return Object.class;
        }
        return t;
    }

    private static Type find(Type type, Class<?> target, int index, Map<TypeVariable<?>, Type> bindings) {
        Class<?> raw;
        Map<TypeVariable<?>, Type> local = bindings;
        if (type instanceof ParameterizedType) {
            ParameterizedType pt = (ParameterizedType) type;
            raw = (Class<?>) pt.getRawType();
            Type[] args = pt.getActualTypeArguments();
            TypeVariable<?>[] vars = raw.getTypeParameters();
            local = new HashMap<>();
            for (int i = 0; i < vars.length && i < args.length; i++) {
                Type a = args[i];
                if (a instanceof TypeVariable && bindings.containsKey(a)) {
                    a = bindings.get(a);
                }
                local.put(vars[i], a);
            }
            if (raw == target) {
                return index < args.length ? local.get(vars[index]) : null;
            }
        } else if (type instanceof Class) {
            raw = (Class<?>) type;
            if (raw == target) {
                return null; // raw use of the interface
            }
            local = new HashMap<>();
        } else {
            return null;
        }
        for (Type i : raw.getGenericInterfaces()) {
            Type r = find(i, target, index, local);
            if (r != null) {
                return r;
            }
        }
        Type sup = raw.getGenericSuperclass();
        return sup == null ? null : find(sup, target, index, local);
    }
}
