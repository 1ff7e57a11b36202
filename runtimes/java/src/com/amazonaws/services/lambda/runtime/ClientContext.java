package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** Client application and device information sent by a mobile SDK (from {@code X-Amz-Client-Context}). */
public interface ClientContext {

    /** The client application information. */
    public Client getClient();

    /** Custom values set by the client application (mutable). */
    public Map<String, String> getCustom();

    /** Device environment information (platform, make, model, locale, ...). */
    public Map<String, String> getEnvironment();
}
