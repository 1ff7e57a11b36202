package lamina.runtime;

import java.lang.reflect.Array;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Queue;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Maps between the JSON tree of {@link Json} and Java objects, following the rules of the Lambda
 * Java programming model: primitives and their boxes, {@code String}, {@code Map}, {@code List}
 * (and other collections), arrays, enums, and POJOs through JavaBean setters/getters or public
 * fields. Unknown properties are ignored; annotations are not honoured.
 */
final class Mapper {

    /** The event or result cannot be mapped. */
    static final class MappingException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        MappingException(String message) {
            super(message);
        }

        MappingException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private Mapper() {}

    // ---------------------------------------------------------------------------------------
    // JSON tree -> Java
    // ---------------------------------------------------------------------------------------

    /** Converts a JSON tree value into an instance of {@code type}. */
    static Object fromTree(Object json, Type type) {
        return convert(json, type, 0);
    }

    private static Object convert(Object json, Type type, int depth) {
        if (depth > Json.MAX_DEPTH) {
            throw new MappingException("nesting too deep");
        }
        if (type instanceof Class) {
            return convertClass(json, (Class<?>) type, null, depth);
        }
        if (type instanceof ParameterizedType) {
            ParameterizedType pt = (ParameterizedType) type;
            return convertClass(json, (Class<?>) pt.getRawType(), pt.getActualTypeArguments(), depth);
        }
        if (type instanceof GenericArrayType) {
            Type component = ((GenericArrayType) type).getGenericComponentType();
            return convertArray(json, rawClass(component), component, depth);
        }
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return convert(json, upper.length > 0 ? upper[0] : Object.class, depth);
        }
        if (type instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) type).getBounds();
            return convert(json, bounds.length > 0 ? bounds[0] : Object.class, depth);
        }
        return json;
    }

    static Class<?> rawClass(Type type) {
        if (type instanceof Class) {
            return (Class<?>) type;
        }
        if (type instanceof ParameterizedType) {
            return (Class<?>) ((ParameterizedType) type).getRawType();
        }
        if (type instanceof GenericArrayType) {
            return Array.newInstance(rawClass(((GenericArrayType) type).getGenericComponentType()), 0).getClass();
        }
        if (type instanceof WildcardType) {
            Type[] upper = ((WildcardType) type).getUpperBounds();
            return upper.length > 0 ? rawClass(upper[0]) : Object.class;
        }
        if (type instanceof TypeVariable) {
            Type[] bounds = ((TypeVariable<?>) type).getBounds();
            return bounds.length > 0 ? rawClass(bounds[0]) : Object.class;
        }
        return Object.class;
    }

    private static String kind(Object json) {
        if (json == null) {
            return "null";
        }
        if (json instanceof Map) {
            return "an object";
        }
        if (json instanceof List) {
            return "an array";
        }
        if (json instanceof String) {
            return "a string";
        }
        if (json instanceof Boolean) {
            return "a boolean";
        }
        return "a number";
    }

    private static MappingException mismatch(Object json, Class<?> c) {
        return new MappingException("Cannot deserialize " + kind(json) + " into " + c.getTypeName());
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Object convertClass(Object json, Class<?> c, Type[] args, int depth) {
        if (c == Object.class) {
            return json;
        }
        if (c.isPrimitive()) {
            if (json == null) {
                return defaultPrimitive(c);
            }
            return scalar(json, boxed(c));
        }
        if (json == null) {
            return c == Optional.class ? Optional.empty() : null;
        }
        if (c == String.class || c == CharSequence.class) {
            if (json instanceof Map || json instanceof List) {
                throw mismatch(json, c);
            }
            return json.toString();
        }
        if (Number.class.isAssignableFrom(c) || c == Boolean.class || c == Character.class) {
            return scalar(json, c);
        }
        if (c.isEnum()) {
            if (!(json instanceof String)) {
                throw mismatch(json, c);
            }
            for (Object constant : c.getEnumConstants()) {
                if (((Enum<?>) constant).name().equals(json)) {
                    return constant;
                }
            }
            throw new MappingException("'" + json + "' is not one of the values of enum " + c.getTypeName());
        }
        if (c == byte[].class && json instanceof String) {
            try {
                return Base64.getMimeDecoder().decode((String) json);
            } catch (IllegalArgumentException e) {
                throw new MappingException("invalid base64 for byte[]: " + e.getMessage(), e);
            }
        }
        if (c.isArray()) {
            return convertArray(json, c.getComponentType(), c.getComponentType(), depth);
        }
        if (c == Optional.class) {
            return Optional.ofNullable(convert(json, arg(args, 0), depth + 1));
        }
        if (c == Date.class) {
            if (json instanceof Number) {
                return new Date(((Number) json).longValue());
            }
            throw mismatch(json, c);
        }
        if (Map.class.isAssignableFrom(c)) {
            if (!(json instanceof Map)) {
                throw mismatch(json, c);
            }
            Map<Object, Object> out = (Map<Object, Object>) newMap(c);
            Type keyType = arg(args, 0);
            Type valueType = arg(args, 1);
            for (Map.Entry<String, Object> e : ((Map<String, Object>) json).entrySet()) {
                Object key = keyType == Object.class || keyType == String.class
                        ? e.getKey()
                        : convert(e.getKey(), keyType, depth + 1);
                out.put(key, convert(e.getValue(), valueType, depth + 1));
            }
            return out;
        }
        if (Collection.class.isAssignableFrom(c) || c == Iterable.class) {
            Collection<Object> out = (Collection<Object>) newCollection(c);
            Type elementType = arg(args, 0);
            if (json instanceof List) {
                for (Object o : (List<Object>) json) {
                    out.add(convert(o, elementType, depth + 1));
                }
            } else {
                out.add(convert(json, elementType, depth + 1)); // a single value where a list is expected
            }
            return out;
        }
        if (json instanceof Map) {
            return convertBean((Map<String, Object>) json, c, args, depth);
        }
        // A POJO from a scalar: a public single-argument constructor or valueOf/fromString (as Jackson).
        Object fromScalar = fromScalarFactory(json, c);
        if (fromScalar != null) {
            return fromScalar;
        }
        throw mismatch(json, c);
    }

    private static Type arg(Type[] args, int i) {
        return args != null && args.length > i ? args[i] : Object.class;
    }

    private static Object defaultPrimitive(Class<?> c) {
        if (c == boolean.class) {
            return Boolean.FALSE;
        }
        if (c == char.class) {
            return '\0';
        }
        return scalar(0, boxed(c));
    }

    static Class<?> boxed(Class<?> c) {
        if (c == int.class) {
            return Integer.class;
        }
        if (c == long.class) {
            return Long.class;
        }
        if (c == double.class) {
            return Double.class;
        }
        if (c == float.class) {
            return Float.class;
        }
        if (c == boolean.class) {
            return Boolean.class;
        }
        if (c == short.class) {
            return Short.class;
        }
        if (c == byte.class) {
            return Byte.class;
        }
        if (c == char.class) {
            return Character.class;
        }
        return c;
    }

    /** Numbers, booleans and characters, accepting their string forms as Jackson does. */
    private static Object scalar(Object json, Class<?> c) {
        if (c == Boolean.class) {
            if (json instanceof Boolean) {
                return json;
            }
            if (json instanceof String && ("true".equals(json) || "false".equals(json))) {
                return Boolean.valueOf((String) json);
            }
            if (json instanceof Integer) {
                return ((Integer) json) != 0;
            }
            throw mismatch(json, c);
        }
        if (c == Character.class) {
            if (json instanceof String && ((String) json).length() == 1) {
                return ((String) json).charAt(0);
            }
            if (json instanceof Integer) {
                return (char) ((Integer) json).intValue();
            }
            throw mismatch(json, c);
        }
        Number n;
        if (json instanceof Number) {
            n = (Number) json;
        } else if (json instanceof String) {
            String s = ((String) json).trim();
            try {
                n = new BigDecimal(s);
            } catch (NumberFormatException e) {
                throw new MappingException("Cannot deserialize '" + json + "' into " + c.getTypeName());
            }
        } else {
            throw mismatch(json, c);
        }
        try {
            if (c == Integer.class) {
                return integral(n, c).intValueExact();
            }
            if (c == Long.class) {
                return integral(n, c).longValueExact();
            }
            if (c == Short.class) {
                return integral(n, c).shortValueExact();
            }
            if (c == Byte.class) {
                return integral(n, c).byteValueExact();
            }
        } catch (ArithmeticException e) {
            throw new MappingException("Numeric value " + n + " out of range of " + c.getTypeName());
        }
        if (c == Double.class) {
            return n.doubleValue();
        }
        if (c == Float.class) {
            return n.floatValue();
        }
        if (c == BigDecimal.class) {
            return n instanceof BigDecimal ? n : new BigDecimal(n.toString());
        }
        if (c == BigInteger.class) {
            return integral(n, c).toBigIntegerExact();
        }
        if (c == Number.class) {
            return n;
        }
        throw mismatch(json, c);
    }

    /** The number as a BigDecimal; fractions are truncated for integer targets, as Jackson does. */
    private static BigDecimal integral(Number n, Class<?> c) {
        BigDecimal d = n instanceof BigDecimal ? (BigDecimal) n : new BigDecimal(n.toString());
        return d.setScale(0, java.math.RoundingMode.DOWN);
    }

    private static Object convertArray(Object json, Class<?> componentClass, Type componentType, int depth) {
        List<?> list = json instanceof List ? (List<?>) json : java.util.Collections.singletonList(json);
        Object array = Array.newInstance(componentClass, list.size());
        for (int i = 0; i < list.size(); i++) {
            Array.set(array, i, convert(list.get(i), componentType, depth + 1));
        }
        return array;
    }

    private static Map<?, ?> newMap(Class<?> c) {
        if (!c.isInterface() && !Modifier.isAbstract(c.getModifiers())) {
            Object o = newInstanceOrNull(c);
            if (o != null) {
                return (Map<?, ?>) o;
            }
        }
        if (SortedMap.class.isAssignableFrom(c)) {
            return new TreeMap<>();
        }
        if (c.isAssignableFrom(ConcurrentHashMap.class) && !c.isAssignableFrom(LinkedHashMap.class)) {
            return new ConcurrentHashMap<>();
        }
        return new LinkedHashMap<>();
    }

    private static Collection<?> newCollection(Class<?> c) {
        if (!c.isInterface() && !Modifier.isAbstract(c.getModifiers())) {
            Object o = newInstanceOrNull(c);
            if (o != null) {
                return (Collection<?>) o;
            }
        }
        if (SortedSet.class.isAssignableFrom(c)) {
            return new TreeSet<>();
        }
        if (Set.class.isAssignableFrom(c)) {
            return new LinkedHashSet<>();
        }
        if (Queue.class.isAssignableFrom(c)) {
            return c.isAssignableFrom(LinkedList.class) ? new LinkedList<>() : new ArrayDeque<>();
        }
        return new ArrayList<>();
    }

    private static Object newInstanceOrNull(Class<?> c) {
        try {
            Constructor<?> k = c.getDeclaredConstructor();
            k.setAccessible(true);
            return k.newInstance();
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    private static Object fromScalarFactory(Object json, Class<?> c) {
        Object arg = json instanceof Map || json instanceof List ? null : json;
        if (arg == null) {
            return null;
        }
        for (Constructor<?> k : c.getConstructors()) {
            Class<?>[] p = k.getParameterTypes();
            if (p.length == 1 && (p[0] == String.class || boxed(p[0]).isInstance(arg))) {
                try {
                    return k.newInstance(p[0] == String.class ? arg.toString() : arg);
                } catch (ReflectiveOperationException | RuntimeException e) {
                    return null;
                }
            }
        }
        return null;
    }

    /** A POJO from a JSON object through setters, then public fields; unknown keys are ignored. */
    private static Object convertBean(Map<String, Object> json, Class<?> c, Type[] args, int depth) {
        if (c.isInterface() || Modifier.isAbstract(c.getModifiers())) {
            throw new MappingException("Cannot construct instance of " + c.getTypeName()
                    + ": abstract types need a concrete class");
        }
        Object bean;
        try {
            Constructor<?> k = c.getDeclaredConstructor();
            k.setAccessible(true);
            bean = k.newInstance();
        } catch (NoSuchMethodException e) {
            throw new MappingException("Cannot construct instance of " + c.getTypeName()
                    + ": no default (no-argument) constructor", e);
        } catch (InvocationTargetException e) {
            throw new MappingException("Cannot construct instance of " + c.getTypeName() + ": "
                    + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new MappingException("Cannot construct instance of " + c.getTypeName() + ": " + e, e);
        }
        BeanInfo info = BeanInfo.of(c);
        Map<TypeVariable<?>, Type> bindings = bindings(c, args);
        for (Map.Entry<String, Object> e : json.entrySet()) {
            Property p = info.find(e.getKey());
            if (p == null || (p.setter == null && p.field == null)) {
                continue;
            }
            try {
                if (p.setter != null) {
                    Type t = resolve(p.setter.getGenericParameterTypes()[0], bindings);
                    p.setter.invoke(bean, convert(e.getValue(), t, depth + 1));
                } else {
                    Type t = resolve(p.field.getGenericType(), bindings);
                    p.field.set(bean, convert(e.getValue(), t, depth + 1));
                }
            } catch (InvocationTargetException ex) {
                throw new MappingException("Cannot set property '" + e.getKey() + "' of " + c.getTypeName() + ": "
                        + ex.getCause(), ex.getCause());
            } catch (IllegalAccessException ex) {
                throw new MappingException("Cannot set property '" + e.getKey() + "' of " + c.getTypeName(), ex);
            } catch (MappingException ex) {
                throw new MappingException(ex.getMessage() + " (property '" + e.getKey() + "' of "
                        + c.getTypeName() + ")", ex.getCause());
            }
        }
        return bean;
    }

    private static Map<TypeVariable<?>, Type> bindings(Class<?> c, Type[] args) {
        if (args == null) {
            return java.util.Collections.emptyMap();
        }
        Map<TypeVariable<?>, Type> m = new HashMap<>();
        TypeVariable<?>[] vars = c.getTypeParameters();
        for (int i = 0; i < vars.length && i < args.length; i++) {
            m.put(vars[i], args[i]);
        }
        return m;
    }

    /** Substitutes the class's type variables, also inside {@code List<T>}, {@code T[]}, ... */
    private static Type resolve(Type t, Map<TypeVariable<?>, Type> bindings) {
        if (bindings.isEmpty()) {
            return t;
        }
        if (t instanceof TypeVariable) {
            Type b = bindings.get(t);
            return b != null ? b : t;
        }
        if (t instanceof ParameterizedType) {
            ParameterizedType pt = (ParameterizedType) t;
            Type[] args = pt.getActualTypeArguments().clone();
            boolean changed = false;
            for (int i = 0; i < args.length; i++) {
                Type r = resolve(args[i], bindings);
                changed |= r != args[i];
                args[i] = r;
            }
            return changed ? new Parameterized((Class<?>) pt.getRawType(), args, pt.getOwnerType()) : t;
        }
        if (t instanceof GenericArrayType) {
            Type c = resolve(((GenericArrayType) t).getGenericComponentType(), bindings);
            if (c instanceof Class) {
                return Array.newInstance((Class<?>) c, 0).getClass();
            }
            if (c != ((GenericArrayType) t).getGenericComponentType()) {
                return (GenericArrayType) () -> c;
            }
        }
        return t;
    }

    /** A parameterized type with substituted arguments. */
    private static final class Parameterized implements ParameterizedType {
        private final Class<?> raw;
        private final Type[] args;
        private final Type owner;

        Parameterized(Class<?> raw, Type[] args, Type owner) {
            this.raw = raw;
            this.args = args;
            this.owner = owner;
        }

        @Override
        public Type[] getActualTypeArguments() {
            return args.clone();
        }

        @Override
        public Type getRawType() {
            return raw;
        }

        @Override
        public Type getOwnerType() {
            return owner;
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder(raw.getTypeName()).append('<');
            for (int i = 0; i < args.length; i++) {
                sb.append(i > 0 ? ", " : "").append(args[i].getTypeName());
            }
            return sb.append('>').toString();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Java -> JSON text
    // ---------------------------------------------------------------------------------------

    /** Serialises a handler result to JSON text. */
    static String toJson(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value, 0, new IdentityHashMap<>());
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, int depth, IdentityHashMap<Object, Boolean> active) {
        if (depth > Json.MAX_DEPTH) {
            throw new MappingException("Direct self-reference or nesting too deep while serializing");
        }
        if (v == null) {
            sb.append("null");
            return;
        }
        if (v instanceof CharSequence || v instanceof Character) {
            Json.quote(sb, v.toString());
            return;
        }
        if (v instanceof Boolean) {
            sb.append(v);
            return;
        }
        if (v instanceof Number) {
            writeNumber(sb, (Number) v);
            return;
        }
        if (v instanceof Enum) {
            Json.quote(sb, ((Enum<?>) v).name());
            return;
        }
        if (v instanceof Date) {
            sb.append(((Date) v).getTime());
            return;
        }
        if (v instanceof Optional) {
            write(sb, ((Optional<?>) v).orElse(null), depth + 1, active);
            return;
        }
        if (v instanceof byte[]) {
            Json.quote(sb, Base64.getEncoder().encodeToString((byte[]) v));
            return;
        }
        if (v instanceof java.time.temporal.TemporalAccessor || v instanceof java.time.Duration
                || v instanceof java.util.UUID || v instanceof java.net.URI || v instanceof java.net.URL
                || v instanceof Class || v instanceof java.util.TimeZone || v instanceof Locale) {
            Json.quote(sb, v instanceof Class ? ((Class<?>) v).getName() : v.toString());
            return;
        }
        if (active.put(v, Boolean.TRUE) != null) {
            throw new MappingException("Direct self-reference while serializing " + v.getClass().getTypeName());
        }
        try {
            if (v instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    Object k = e.getKey();
                    Json.quote(sb, k instanceof Enum ? ((Enum<?>) k).name() : String.valueOf(k));
                    sb.append(':');
                    write(sb, e.getValue(), depth + 1, active);
                }
                sb.append('}');
            } else if (v instanceof Iterable) {
                sb.append('[');
                boolean first = true;
                for (Iterator<?> it = ((Iterable<?>) v).iterator(); it.hasNext(); ) {
                    if (!first) {
                        sb.append(',');
                    }
                    first = false;
                    write(sb, it.next(), depth + 1, active);
                }
                sb.append(']');
            } else if (v.getClass().isArray()) {
                sb.append('[');
                int n = Array.getLength(v);
                for (int i = 0; i < n; i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    write(sb, Array.get(v, i), depth + 1, active);
                }
                sb.append(']');
            } else {
                writeBean(sb, v, depth, active);
            }
        } finally {
            active.remove(v);
        }
    }

    private static void writeNumber(StringBuilder sb, Number n) {
        if (n instanceof Double || n instanceof Float) {
            double d = n.doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                Json.quote(sb, n.toString()); // JSON has no NaN/Infinity
            } else {
                sb.append(n);
            }
        } else if (n instanceof BigDecimal) {
            sb.append(((BigDecimal) n).toString());
        } else if (n instanceof Integer || n instanceof Long || n instanceof Short || n instanceof Byte
                || n instanceof BigInteger || n instanceof java.util.concurrent.atomic.AtomicInteger
                || n instanceof java.util.concurrent.atomic.AtomicLong) {
            sb.append(n);
        } else {
            double d = n.doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                Json.quote(sb, n.toString());
            } else {
                sb.append(new BigDecimal(n.toString()));
            }
        }
    }

    private static void writeBean(StringBuilder sb, Object v, int depth, IdentityHashMap<Object, Boolean> active) {
        BeanInfo info = BeanInfo.of(v.getClass());
        sb.append('{');
        boolean first = true;
        for (Property p : info.readable) {
            Object value;
            try {
                value = p.getter != null ? p.getter.invoke(v) : p.field.get(v);
            } catch (InvocationTargetException e) {
                throw new MappingException("Cannot read property '" + p.name + "' of " + v.getClass().getTypeName()
                        + ": " + e.getCause(), e.getCause());
            } catch (IllegalAccessException e) {
                throw new MappingException("Cannot read property '" + p.name + "' of " + v.getClass().getTypeName(),
                        e);
            }
            if (!first) {
                sb.append(',');
            }
            first = false;
            Json.quote(sb, p.name);
            sb.append(':');
            write(sb, value, depth + 1, active);
        }
        sb.append('}');
    }

    // ---------------------------------------------------------------------------------------
    // JavaBean introspection (no java.beans: it is a separate module and slow to load)
    // ---------------------------------------------------------------------------------------

    static final class Property {
        final String name;
        Method getter;
        Method setter;
        Field field;

        Property(String name) {
            this.name = name;
        }
    }

    static final class BeanInfo {
        private static final Map<Class<?>, BeanInfo> CACHE = new ConcurrentHashMap<>();

        final Map<String, Property> byName = new LinkedHashMap<>();
        final List<Property> readable = new ArrayList<>();
        private Map<String, Property> byLowerName;

        static BeanInfo of(Class<?> c) {
            BeanInfo info = CACHE.get(c);
            if (info == null) {
                info = new BeanInfo(c);
                CACHE.put(c, info);
            }
            return info;
        }

        private BeanInfo(Class<?> c) {
            // Properties backed by fields come in declaration order (superclasses first), as Jackson.
            List<Class<?>> chain = new ArrayList<>();
            for (Class<?> k = c; k != null && k != Object.class; k = k.getSuperclass()) {
                chain.add(0, k);
            }
            for (Class<?> k : chain) {
                for (Field f : k.getDeclaredFields()) {
                    if (!Modifier.isStatic(f.getModifiers()) && !f.isSynthetic()) {
                        byName.putIfAbsent(f.getName(), new Property(f.getName()));
                    }
                }
            }
            Map<String, Property> accessorOnly = new TreeMap<>();
            boolean publicClass = Modifier.isPublic(c.getModifiers());
            for (Method m : c.getMethods()) {
                if (Modifier.isStatic(m.getModifiers()) || m.isBridge() || m.isSynthetic()
                        || m.getDeclaringClass() == Object.class) {
                    continue;
                }
                String n = m.getName();
                int params = m.getParameterCount();
                String prop = null;
                boolean getter = false;
                if (params == 0 && m.getReturnType() != void.class) {
                    if (n.startsWith("get") && n.length() > 3) {
                        prop = decapitalize(n.substring(3));
                        getter = true;
                    } else if (n.startsWith("is") && n.length() > 2
                            && (m.getReturnType() == boolean.class || m.getReturnType() == Boolean.class)) {
                        prop = decapitalize(n.substring(2));
                        getter = true;
                    }
                } else if (params == 1 && n.startsWith("set") && n.length() > 3) {
                    prop = decapitalize(n.substring(3));
                }
                if (prop == null) {
                    continue;
                }
                if (!publicClass || !Modifier.isPublic(m.getDeclaringClass().getModifiers())) {
                    try {
                        m.setAccessible(true);
                    } catch (RuntimeException e) {
                        continue;
                    }
                }
                Property p = byName.get(prop);
                if (p == null) {
                    p = accessorOnly.computeIfAbsent(prop, Property::new);
                }
                if (getter) {
                    if (p.getter == null || n.startsWith("get")) {
                        p.getter = m;
                    }
                } else if (p.setter == null || preferSetter(m, p)) {
                    p.setter = m;
                }
            }
            byName.putAll(accessorOnly);
            for (Field f : c.getFields()) {
                if (Modifier.isStatic(f.getModifiers())) {
                    continue;
                }
                Property p = byName.get(f.getName());
                if (p == null) {
                    p = new Property(f.getName());
                    byName.put(f.getName(), p);
                }
                if (!Modifier.isPublic(f.getDeclaringClass().getModifiers())) {
                    try {
                        f.setAccessible(true);
                    } catch (RuntimeException e) {
                        continue;
                    }
                }
                if (p.field == null) {
                    p.field = f;
                }
            }
            for (Property p : byName.values()) {
                if (p.getter != null) {
                    p.field = p.field != null && Modifier.isPublic(p.field.getModifiers()) ? p.field : null;
                    readable.add(p);
                } else if (p.field != null && Modifier.isPublic(p.field.getModifiers())) {
                    readable.add(p);
                } else {
                    p.field = null;
                }
            }
            byName.values().removeIf(p -> p.getter == null && p.setter == null && p.field == null);
        }

        /** With overloaded setters, prefer the one whose parameter matches the getter's type. */
        private static boolean preferSetter(Method m, Property p) {
            return p.getter != null && m.getParameterTypes()[0] == p.getter.getReturnType();
        }

        /** The property for a JSON key: exact name, then the key decapitalised, then ignoring case. */
        Property find(String key) {
            Property p = byName.get(key);
            if (p == null && !key.isEmpty()) {
                p = byName.get(decapitalize(key));
            }
            if (p == null) {
                if (byLowerName == null) {
                    Map<String, Property> lower = new HashMap<>();
                    for (Property q : byName.values()) {
                        lower.putIfAbsent(q.name.toLowerCase(Locale.ROOT), q);
                    }
                    byLowerName = lower;
                }
                p = byLowerName.get(key.toLowerCase(Locale.ROOT));
            }
            return p;
        }
    }

    /** JavaBeans naming: "FirstName" -> "firstName", "URL" -> "URL". */
    static String decapitalize(String s) {
        if (s.isEmpty() || (s.length() > 1 && Character.isUpperCase(s.charAt(1)) && Character.isUpperCase(s.charAt(0)))) {
            return s;
        }
        return Character.toLowerCase(s.charAt(0)) + s.substring(1);
    }
}
