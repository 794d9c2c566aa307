#!/usr/bin/env bash
# make demo: two hosts (network namespaces) joined by a veth, an encrypted
# tomato tunnel between them exactly as the README's basic example, then a
# ping and a TCP transfer through it, and a rule-based proxy on each side.
# Everything it creates is removed on exit, Ctrl-C included, and nothing else: its
# namespaces are named after its own temporary folder, and its veth is created inside
# them, so a parallel run or one killed midway never collides with this one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, tun devices)" >&2; exit 1; }

PIDS=() OURS=()
WORK=$(mktemp -d /tmp/tomato-demo.XXXXXXXX)      # unique while it exists, even after a kill -9
A=tomato-demo-a-${WORK##*.} B=tomato-demo-b-${WORK##*.}

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for ns in "${OURS[@]}"; do ip netns del "$ns"; rm -rf "/etc/netns/$ns"; done
    rm -rf "$WORK"
    echo "== cleaned up: namespaces, devices and processes removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }
wait_listening() {   # NS PORT: until a TCP server listens there (at most 5 s)
    for _ in $(seq 50); do
        [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ] && return 0
        sleep 0.1
    done
}
wait_tunnel_up() {  # LOG: until that vpn says its tunnel is up (at most 10 s)
    for _ in $(seq 100); do
        grep -q "tunnel tun0 up" "$WORK/$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo: $1 never said 'tunnel tun0 up':" >&2; cat "$WORK/$1" >&2; return 1
}
bg() { local ns=$1 log=$2; shift 2; ip netns exec "$ns" "$@" >"$WORK/$log" 2>&1 & PIDS+=($!); }

step "two hosts: $A (192.168.8.130) and $B (192.168.8.131), joined by a veth"
for ns in "$A" "$B"; do ip netns add "$ns" || exit 1; OURS+=("$ns"); done
ip -n "$A" link add demo-a type veth peer name demo-b netns "$B"   # never in the root namespace
for ns in "$A" "$B"; do
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
inA ip addr add 192.168.8.130/24 dev demo-a; inA ip link set demo-a up
inB ip addr add 192.168.8.131/24 dev demo-b; inB ip link set demo-b up

step "tun0 on each host, as in the README (ip tuntap add ...; mtu 1400; 10.0.1.1/30 <=> 10.0.1.2/30)"
for ns in "$A" "$B"; do
    ip netns exec "$ns" ip tuntap add dev tun0 mode tun
    ip netns exec "$ns" ip link set tun0 up
    ip netns exec "$ns" ip link set tun0 mtu 1400
done
inA ip addr add 10.0.1.1/30 dev tun0
inB ip addr add 10.0.1.2/30 dev tun0

step "A: vpn -la :5000 -lp pwd1 -pa 192.168.8.131:5000 -pp pwd2 -v"
bg "$A" vpn-a.log "$PYTHON" bin/vpn -la :5000 -lp pwd1 -pa 192.168.8.131:5000 -pp pwd2 -v
step "B: vpn -la :5000 -lp pwd2 -pa 192.168.8.130:5000 -pp pwd1 -v"
bg "$B" vpn-b.log "$PYTHON" bin/vpn -la :5000 -lp pwd2 -pa 192.168.8.130:5000 -pp pwd1 -v
wait_tunnel_up vpn-a.log; wait_tunnel_up vpn-b.log

step "ping through the tunnel (A -> 10.0.1.2)"
inA ping -c 3 -i 0.2 10.0.1.2

step "tomato's own ping as a heartbeat (A: bin/ping -a 10.0.1.2 -c 3 -i 0.2)"
inA "$PYTHON" bin/ping -a 10.0.1.2 -c 3 -i 0.2 || true

step "a TCP transfer through the tunnel: iperf3 for 3 seconds, B -> A"
bg "$A" iperf-server.log iperf3 -s -1 -B 10.0.1.1
wait_listening "$A" 5201
inB iperf3 -c 10.0.1.1 -t 3 -f m | grep -E 'sender|receiver'

step "what the tunnel says (vpn -v on A)"
sed -n '1,12p' "$WORK/vpn-a.log"

if [ -f tomato_gevent/proxy/server.py ]; then
    step "a rule-based proxy on each host; A forwards across the tunnel to B's proxy"
    # Names for the demo's sites: one only A can reach, one only B can reach.
    mkdir -p "/etc/netns/$A" "/etc/netns/$B"
    printf '127.0.0.1 localhost\n127.0.0.1 site-a.test\n' > "/etc/netns/$A/hosts"
    printf '127.0.0.1 localhost\n127.0.0.1 site-b.test\n' > "/etc/netns/$B/hosts"
    mkdir -p "$WORK/www-a" "$WORK/www-b"
    echo "hello from a site on host A (served directly)" > "$WORK/www-a/index.html"
    echo "hello from a site on host B (forwarded through B's proxy)" > "$WORK/www-b/index.html"
    bg "$A" www-a.log "$PYTHON" -m http.server 8080 --bind 127.0.0.1 --directory "$WORK/www-a"
    bg "$B" www-b.log "$PYTHON" -m http.server 8080 --bind 127.0.0.1 --directory "$WORK/www-b"
    printf '# demo rules\nblock\tads.site-a.test\ndirect\tsite-a.test\nforward\tsite-b.test\n' > "$WORK/rules.txt"
    cat "$WORK/rules.txt"
    echo "A: proxy -a 127.0.0.1:1080 -f 10.0.1.2:1080 -r rules.txt -v"
    bg "$A" proxy-a.log "$PYTHON" bin/proxy -a 127.0.0.1:1080 -f 10.0.1.2:1080 -r "$WORK/rules.txt" -v
    # site-b.test lives on B's loopback, which B's proxy refuses to clients that are not on
    # loopback themselves (A arrives over the tunnel) unless told otherwise.
    echo "B: proxy -a 10.0.1.2:1080 --allow-private -v"
    bg "$B" proxy-b.log "$PYTHON" bin/proxy -a 10.0.1.2:1080 --allow-private -v
    wait_listening "$A" 1080; wait_listening "$B" 1080; wait_listening "$A" 8080; wait_listening "$B" 8080
    export ALL_PROXY=http://127.0.0.1:1080
    step "curl http://site-a.test:8080/   (rule: direct)"
    inA curl -sS -x http://127.0.0.1:1080 http://site-a.test:8080/
    step "curl http://site-b.test:8080/   (rule: forward; only B can reach it)"
    inA curl -sS -x http://127.0.0.1:1080 http://site-b.test:8080/
    step "curl http://ads.site-a.test:8080/   (rule: block)"
    inA curl -sS -o /dev/null -w 'HTTP %{http_code}\n' -x http://127.0.0.1:1080 http://ads.site-a.test:8080/ || true
    step "what the proxy on A logged"
    cat "$WORK/proxy-a.log"
fi
step "demo finished"
