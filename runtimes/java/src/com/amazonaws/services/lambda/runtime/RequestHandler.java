package com.amazonaws.services.lambda.runtime;

/**
 * A handler whose input is deserialised from the event JSON into {@code I} and whose output is
 * serialised to JSON. The handler string is then just the class name.
 *
 * @param <I> the input type
 * @param <O> the output type
 */
public interface RequestHandler<I, O> {

    /** Handles one invocation. */
    public O handleRequest(I input, Context context);
}
