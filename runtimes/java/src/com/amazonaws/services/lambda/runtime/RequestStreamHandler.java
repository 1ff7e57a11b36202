package com.amazonaws.services.lambda.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** A handler reading the raw event bytes and writing the raw result bytes. */
public interface RequestStreamHandler {

    /** Handles one invocation. */
    public void handleRequest(InputStream input, OutputStream output, Context context) throws IOException;
}
