#!/usr/bin/env python3
"""End-to-end smoke test with boto3 against a running Lamina.

    scripts/smoke-boto3.py http://127.0.0.1:9000 ./lamina-data/credentials [http://127.0.0.1:9002]

Exercises what a boto3 user does first (create, waiters, invoke with Tail, versions, aliases,
permissions, Event invokes, paginators, errors; with the S3 API's URL also: a bucket, `upload_file`
of a package, CreateFunction from S3, the `Code.Location` download) and exits non-zero on the
first surprise.
"""
import base64
import io
import json
import os
import hashlib
import sys
import tempfile
import urllib.request
import uuid
import zipfile

import boto3
import botocore.config
import botocore.exceptions

endpoint, credentials = sys.argv[1], sys.argv[2]
s3_endpoint = sys.argv[3] if len(sys.argv) > 3 else None
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials
session = boto3.Session(profile_name="lamina")
lam = session.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
passed = 0


def check(what, cond, detail=""):
    global passed
    if not cond:
        print(f"FAIL {what}: {detail}")
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
    passed += 1


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr(
        "lambda_function.py",
        "import os\ndef handler(e, c):\n    print('hi', e)\n"
        "    return {'v': os.environ.get('VV'), 'ver': c.function_version, 'arn': c.invoked_function_arn}\n",
    )
name = "boto3-smoke"
try:
    lam.delete_function(FunctionName=name)
except lam.exceptions.ResourceNotFoundException:
    pass
role = "arn:aws:iam::123456789012:role/smoke"
f = lam.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="lambda_function.handler",
                        Code={"ZipFile": buf.getvalue()}, Environment={"Variables": {"VV": "one"}}, Publish=True)
check("create publishes version 1", f["Version"] == "1", f)
lam.get_waiter("function_active_v2").wait(FunctionName=name)

r = lam.invoke(FunctionName=name, Payload=b'{"a": 1}', LogType="Tail")
body = json.loads(r["Payload"].read())
log = base64.b64decode(r["LogResult"]).decode()
check("invoke result", body["v"] == "one" and body["ver"] == "$LATEST", body)
check("executed version", r["ExecutedVersion"] == "$LATEST", r)
check("tail log", "START RequestId:" in log and "hi {'a': 1}" in log and "REPORT RequestId:" in log, log)

lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"VV": "two"}})
lam.get_waiter("function_updated_v2").wait(FunctionName=name)
v = lam.publish_version(FunctionName=name, Description="second")
check("publish", v["Version"] == "2", v)
alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
check("alias arn", alias["AliasArn"].endswith(f":function:{name}:live"), alias)
r = lam.invoke(FunctionName=f"{name}:live")
body = json.loads(r["Payload"].read())
check("alias runs version 2", r["ExecutedVersion"] == "2" and body["v"] == "two", body)
r = lam.invoke(FunctionName=name, Qualifier="1")
check("version 1 keeps its configuration", json.loads(r["Payload"].read())["v"] == "one")

stmt = json.loads(lam.add_permission(FunctionName=name, StatementId="s3", Action="lambda:InvokeFunction",
                                     Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket")["Statement"])
check("statement", stmt["Principal"] == {"Service": "s3.amazonaws.com"}, stmt)
policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
check("policy", policy["Statement"][0]["Sid"] == "s3", policy)

check("event", lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202)
check("dry run", lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204)
versions = [x["Version"] for x in lam.list_versions_by_function(FunctionName=name)["Versions"]]
check("versions", versions == ["$LATEST", "1", "2"], versions)
names = [fn["FunctionName"] for page in lam.get_paginator("list_functions").paginate() for fn in page["Functions"]]
check("paginator", name in names, names)
check("bad payload", error_code(lambda: lam.invoke(FunctionName=name, Payload=b"not json"))
      == ("InvalidRequestContentException", 400))
check("duplicate", error_code(lambda: lam.create_function(
    FunctionName=name, Runtime="python3.11", Role=role, Handler="h",
    Code={"ZipFile": buf.getvalue()})) == ("ResourceConflictException", 409))
check("unknown", error_code(lambda: lam.get_function(FunctionName="nope-" + name))
      == ("ResourceNotFoundException", 404))
lam.delete_function(FunctionName=name)
check("deleted", error_code(lambda: lam.get_function(FunctionName=name))[0] == "ResourceNotFoundException")

if s3_endpoint:
    s3 = session.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        config=botocore.config.Config(s3={"addressing_style": "path"}))
    bucket = "smoke-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    check("bucket listed", bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]])
    with tempfile.NamedTemporaryFile(suffix=".zip") as package:
        package.write(buf.getvalue())
        package.flush()
        s3.upload_file(package.name, bucket, "packages/function.zip")
    head = s3.head_object(Bucket=bucket, Key="packages/function.zip")
    check("uploaded", head["ContentLength"] == len(buf.getvalue()), head)
    s3_name = name + "-s3"
    f = lam.create_function(FunctionName=s3_name, Runtime="python3.11", Role=role, Handler="lambda_function.handler",
                            Code={"S3Bucket": bucket, "S3Key": "packages/function.zip"},
                            Environment={"Variables": {"VV": "s3"}})
    sha = base64.b64encode(hashlib.sha256(buf.getvalue()).digest()).decode()
    check("create from S3", f["CodeSha256"] == sha, f)
    lam.get_waiter("function_active_v2").wait(FunctionName=s3_name)
    body = json.loads(lam.invoke(FunctionName=s3_name)["Payload"].read())
    check("invoke code from S3", body["v"] == "s3", body)
    location = lam.get_function(FunctionName=s3_name)["Code"]["Location"]
    with urllib.request.urlopen(location) as download:
        check("Code.Location", download.read() == buf.getvalue(), location)
    check("missing key", error_code(lambda: lam.update_function_code(
        FunctionName=s3_name, S3Bucket=bucket, S3Key="nope.zip")) == ("InvalidParameterValueException", 400))
    lam.delete_function(FunctionName=s3_name)
    s3.delete_object(Bucket=bucket, Key="packages/function.zip")
    s3.delete_bucket(Bucket=bucket)
print(f"{passed} passed, 0 failed")
