package com.amazonaws.services.lambda.runtime;

/** The client application that invoked the function through a mobile SDK. */
public interface Client {

    public String getInstallationId();

    public String getAppTitle();

    public String getAppVersionName();

    public String getAppVersionCode();

    public String getAppPackageName();
}
