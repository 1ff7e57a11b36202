package com.amazonaws.services.lambda.runtime;

/** A low-level logger: each call produces one log event (same API as {@code aws-lambda-java-core}). */
public interface LambdaLogger {

    /** Logs a string as one event; newlines inside it are kept in the event. */
    public void log(String message);

    /** Logs bytes (UTF-8 text) as one event. */
    public void log(byte[] message);
}
