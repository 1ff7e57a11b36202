package com.amazonaws.services.lambda.runtime;

/**
 * Information about the invocation, the function and the execution environment (same package, name
 * and methods as {@code aws-lambda-java-core}).
 */
public interface Context {

    /** The request id; the same id is reused when the request is retried. */
    String getAwsRequestId();

    /** The log group of the function ({@code /aws/lambda/<function name>}); may be null. */
    String getLogGroupName();

    /** The log stream of this execution environment; may be null. */
    String getLogStreamName();

    /** The name of the function being executed. */
    String getFunctionName();

    /** The version being executed ({@code $LATEST} or a number). */
    String getFunctionVersion();

    /** The ARN used to invoke the function (unqualified, version or alias ARN). */
    String getInvokedFunctionArn();

    /** The Amazon Cognito identity of the caller, or null. */
    CognitoIdentity getIdentity();

    /** The client context sent by a mobile SDK, or null. */
    ClientContext getClientContext();

    /** Milliseconds left before the invocation times out (never negative). */
    int getRemainingTimeInMillis();

    /** The function's configured memory in MB. */
    int getMemoryLimitInMB();

    /** The logger of this invocation: one log event per call. */
    LambdaLogger getLogger();
}
