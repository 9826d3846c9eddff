#!/bin/sh
# Start one process of a cascadewatch Bytewax cluster inside a StatefulSet pod.
#
# The pod's hostname is <statefulset>-<ordinal>; the ordinal is this process's id, and the
# addresses of all processes are the pods' stable names under the headless Service:
#   <statefulset>-<i>.<service>[.<domain>]:<port>   for i in 0 .. CASCADEWATCH_PROCESSES-1
# Then it execs
#   cascadewatch run CONFIG [--addresses A0,A1,... --process-id ORDINAL] --recovery-dir DIR [ARGS...]
# (one process: no --addresses). Extra arguments are passed on.
#
# Environment:
#   CASCADEWATCH_PROCESSES      number of processes; must equal the StatefulSet's replicas (required)
#   CASCADEWATCH_PEER_SERVICE   headless Service name (default: <statefulset>-headless)
#   CASCADEWATCH_PEER_DOMAIN    suffix after the Service, e.g. "$(POD_NAMESPACE).svc" (default: none)
#   CASCADEWATCH_CLUSTER_PORT   Bytewax cluster port (default 9999)
#   CASCADEWATCH_CONFIG         config file (default /etc/cascadewatch/config.toml)
#   CASCADEWATCH_RECOVERY_DIR   recovery directory (default /var/lib/cascadewatch/recovery)
#   CASCADEWATCH_DNS_WAIT_S     wait this long for the pod's own name to resolve (default 120; 0: don't)
#   HOSTNAME                    set by Kubernetes to the pod name
set -eu

die() { echo "cascadewatch-cluster: $*" >&2; exit 64; }

processes="${CASCADEWATCH_PROCESSES:-}"
case "$processes" in
    '' | *[!0-9]* | 0) die "CASCADEWATCH_PROCESSES must be the StatefulSet's replica count (got '$processes')" ;;
esac
pod="${HOSTNAME:-$(hostname)}"
ordinal="${pod##*-}"
set_name="${pod%-*}"
case "$ordinal" in
    '' | *[!0-9]*) die "cannot read the pod ordinal from hostname '$pod' (expected <statefulset>-<n>)" ;;
esac
[ "$set_name" != "$pod" ] || die "cannot read the StatefulSet name from hostname '$pod'"
[ "$ordinal" -lt "$processes" ] || die "pod ordinal $ordinal >= CASCADEWATCH_PROCESSES=$processes: set it to the replica count"

service="${CASCADEWATCH_PEER_SERVICE:-${set_name}-headless}"
domain="${CASCADEWATCH_PEER_DOMAIN:-}"
port="${CASCADEWATCH_CLUSTER_PORT:-9999}"
config="${CASCADEWATCH_CONFIG:-/etc/cascadewatch/config.toml}"
recovery="${CASCADEWATCH_RECOVERY_DIR:-/var/lib/cascadewatch/recovery}"
dns_wait="${CASCADEWATCH_DNS_WAIT_S:-120}"

peer() { echo "${set_name}-$1.${service}${domain:+.$domain}"; }

mkdir -p "$recovery"

if [ "$processes" -eq 1 ]; then
    echo "cascadewatch-cluster: single process ($pod)" >&2
    exec cascadewatch run "$config" --recovery-dir "$recovery" "$@"
fi

addresses=""
i=0
while [ "$i" -lt "$processes" ]; do
    addresses="${addresses:+$addresses,}$(peer "$i"):$port"
    i=$((i + 1))
done

# Bytewax binds to this process's own address; its DNS record appears shortly after the pod
# gets an IP (the headless Service publishes not-ready addresses). Peers are retried by Bytewax.
if [ "$dns_wait" -gt 0 ]; then
    python - "$(peer "$ordinal")" "$dns_wait" <<'EOF' || die "$(peer "$ordinal") does not resolve: is the headless Service there?"
import socket, sys, time
name, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.getaddrinfo(name, None)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(1)
EOF
fi

echo "cascadewatch-cluster: process $ordinal of $processes; addresses $addresses" >&2
exec cascadewatch run "$config" --addresses "$addresses" --process-id "$ordinal" --recovery-dir "$recovery" "$@"
