#!/usr/bin/env bash
# Reads a function's logs and metrics from a running Lamina with the AWS CLI, exactly as against AWS:
#
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=us-east-1 \
#     scripts/cli-observability-smoke.sh http://127.0.0.1:9000 my-function
#
# Uses `aws` from PATH (CLI v1 or v2), or `$LAMINA_TEST_AWS_PYTHON -m awscli` when that is set
# (scripts/test.sh's virtualenv). Fails when the group has no events or the metric has no datapoints.
# The same checks run in CI as tests/observability/cli.rs.
set -euo pipefail

endpoint=${1:?usage: $0 ENDPOINT_URL FUNCTION_NAME}
function=${2:?usage: $0 ENDPOINT_URL FUNCTION_NAME}
group="/aws/lambda/$function"

aws() {
    if [[ -n "${LAMINA_TEST_AWS_PYTHON:-}" ]]; then
        "$LAMINA_TEST_AWS_PYTHON" -m awscli "$@" --endpoint-url "$endpoint" --output json
    else
        command aws "$@" --endpoint-url "$endpoint" --output json
    fi
}

echo "== describe-log-streams $group (newest first)"
stream=$(aws logs describe-log-streams --log-group-name "$group" --order-by LastEventTime --descending \
    --max-items 1 --query 'logStreams[0].logStreamName' | tr -d '"')
[[ -n "$stream" && "$stream" != null ]] || { echo "no log stream in $group" >&2; exit 1; }
echo "$stream"

echo "== get-log-events $stream"
aws logs get-log-events --log-group-name "$group" --log-stream-name "$stream" --start-from-head \
    --query 'events[].message' | tee /dev/stderr | grep -q 'REPORT RequestId' \
    || { echo "no REPORT line in $stream" >&2; exit 1; }

echo "== filter-log-events $group 'RequestId' (last hour)"
since=$(( ($(date +%s) - 3600) * 1000 ))
aws logs filter-log-events --log-group-name "$group" --filter-pattern RequestId --start-time "$since" \
    --query 'length(events)'

echo "== cloudwatch get-metric-statistics Invocations (last hour)"
start=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
end=$(date -u -d '+1 minute' +%Y-%m-%dT%H:%M:%SZ)
sum=$(aws cloudwatch get-metric-statistics --namespace AWS/Lambda --metric-name Invocations \
    --dimensions "Name=FunctionName,Value=$function" --statistics Sum --period 60 \
    --start-time "$start" --end-time "$end" --query 'sum(Datapoints[].Sum)')
echo "Invocations: $sum"
[[ "$sum" != 0 && "$sum" != 0.0 ]] || { echo "no invocations counted for $function" >&2; exit 1; }
