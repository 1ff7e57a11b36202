#!/bin/sh
# Builds Lamina's Java runtime jar (the com.amazonaws.services.lambda.runtime API that handlers compile
# against, plus the runtime itself) with the JDK's javac + jar, without downloading anything:
#
#   scripts/build-java-api.sh [output.jar]        # default: target/lamina-java-runtime.jar
#
# It is the same jar the exec-host embeds and mounts at /var/runtime/java/lamina-java-runtime.jar.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/lamina-java-runtime.jar}
if command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; then
    javac=$(command -v javac)
    jar=$(command -v jar)
elif [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ -x "$JAVA_HOME/bin/jar" ]; then
    javac=$JAVA_HOME/bin/javac
    jar=$JAVA_HOME/bin/jar
else
    echo "build-java-api.sh: javac and jar not found on PATH or in \$JAVA_HOME/bin (install a JDK >= 17)" >&2
    exit 1
fi
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
find "$root/runtimes/java/src" -name '*.java' | sort >"$classes/sources.txt"
"$javac" --release 17 -encoding UTF-8 -nowarn -d "$classes/out" @"$classes/sources.txt"
mkdir -p "$(dirname "$out")"
rm -f "$out"
"$jar" --create --file "$out" -C "$classes/out" .
echo "$out"
