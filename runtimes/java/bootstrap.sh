#!/bin/sh
# Lamina java runtime launcher: adds the memory-dependent JVM flags, then execs the JVM.
#
#   /bin/sh /var/runtime/java/bootstrap.sh <java> [jvm flags...] -cp <runtime jar> lamina.runtime.Bootstrap
#
# (the command of the `java<N>` entries of the exec-host's runtime registry; cwd /var/task).
# The sandbox has no /sys/fs/cgroup, so the JVM cannot see its memory limit and would size itself
# from the host's RAM (a 1/4-of-host heap is far beyond a 128 MB cgroup limit). It is sized here
# from AWS_LAMBDA_FUNCTION_MEMORY_SIZE instead; docs/runtimes-java.md explains the numbers.
# Users can add flags with JAVA_TOOL_OPTIONS in the function's environment.
mem=${AWS_LAMBDA_FUNCTION_MEMORY_SIZE:-128}
case $mem in
    '' | *[!0-9]*) mem=128 ;;
esac
[ "$mem" -lt 64 ] && mem=64
heap=$((mem * 70 / 100))            # Java heap: 70% of the function's memory
cpus=$(((mem + 1768) / 1769))       # the CPU share of the function: 1769 MB = 1 vCPU
java=$1
shift
exec "$java" "-XX:MaxRAM=${mem}m" "-XX:MaxHeapSize=${heap}m" "-XX:ActiveProcessorCount=${cpus}" "$@"
