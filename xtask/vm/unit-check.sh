# The Debian package under a real systemd (PID 1 in the VM, `cargo xtask vm --systemd`):
# install it, start the shipped unit, put a latency fault in force, run an experiment whose
# http, prometheus and command probes all must pass, crash the daemon, stop the unit, purge
# the package, and see that nothing is left. Run by `cargo xtask test`, with DEB set to the
# package. Traffic stays on a veth pair this script makes inside the VM.
set -u
say() { echo "unit-check $(date +%T): $*"; }
fail() {
  say "FAIL: $*"
  journalctl -u chaos-daemon --no-pager -o cat | tail -40
  exit 1
}
OP=chaos-op
SOCK=/run/chaos-daemon/chaos.sock
ctl() { runuser -u $OP -- chaosctl "$@"; }
health() { curl -sf --unix-socket $SOCK http://daemon/v1/health; }
# Debian 12's bpftool does not show TCX attachments (TOOLCHAIN.md): count our loaded programs.
loaded() { bpftool prog show | grep -c ' name chaos_'; }
tree() { tc qdisc show dev va | grep -Ec 'qdisc (prio|netem|fq) '; }

# man-db's trigger rebuilds its index at each install and purge: minutes under TCG.
rm -f /var/lib/man-db/auto-update
say "installing $DEB"
dpkg -i "$DEB" >/dev/null || fail "dpkg -i $DEB"
useradd --no-create-home --no-user-group --groups chaos --shell /usr/sbin/nologin $OP
ip link add va type veth peer name vb || fail "veth"
ip netns add b
ip link set vb netns b
ip addr add 10.99.0.1/24 dev va
ip link set va up
ip -n b addr add 10.99.0.2/24 dev vb
ip -n b addr add 10.99.0.3/24 dev vb
ip -n b link set vb up
ip -n b link set lo up

say "starting the unit"
systemctl start chaos-daemon || fail "systemctl start chaos-daemon"
say "unit active: $(systemctl is-active chaos-daemon)"
health | grep -q '"fq":true' || fail "the daemon under its unit cannot run the latency qdisc: $(health)"

ctl add latency --to 10.99.0.2 --delay 50ms --iface va --ttl 5m --name unit-latency >/dev/null ||
  fail "add latency as a member of group chaos"
[ "$(tree)" -ge 3 ] || fail "no latency tree on va: $(tc qdisc show dev va)"
rtt=$(ping -c 5 -i 0.2 -q 10.99.0.2 | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
say "ping RTT through 50 ms under the unit: ${rtt:-none} ms"
awk -v r="${rtt:-0}" 'BEGIN { exit !(r >= 50 && r < 60) }' || fail "RTT ${rtt:-none} ms with 50 ms of latency"

# Probes of every kind: a web server behind the experiment's fault, a real Prometheus scraping itself, and
# a command that must run as the caller (not root).
ip netns exec b /usr/bin/python3 -m http.server 8080 --bind 10.99.0.3 >/dev/null 2>&1 &
web=$!
mkdir -p /tmp/prom
cat >/tmp/prom/prometheus.yml <<'EOF'
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ["127.0.0.1:9091"]
EOF
prometheus --config.file=/tmp/prom/prometheus.yml --storage.tsdb.path=/tmp/prom/data \
  --web.listen-address=127.0.0.1:9091 >/tmp/prom/log 2>&1 &
prom=$!
say "waiting for Prometheus"
for _ in $(seq 120); do
  curl -sf 'http://127.0.0.1:9091/api/v1/query?query=up' | grep -q '"value"' && break
  sleep 0.5
done
curl -sf 'http://127.0.0.1:9091/api/v1/query?query=up' | grep -q '"value"' ||
  fail "Prometheus never scraped itself: $(tail -5 /tmp/prom/log)"
cat >/tmp/unit-check.toml <<'EOF'
name = "unit-check"
hypothesis = "probes of every kind run under the shipped unit"
duration = "3s"

[[probes]]
id = "web"
http = { url = "http://10.99.0.3:8080/" }
timeout = "2s"

[[probes]]
id = "prometheus"
prometheus = { url = "http://127.0.0.1:9091", query = "up{job=\"self\"}" }
timeout = "2s"
expect = { range = [1, 1] }

[[probes]]
id = "caller"
command = { argv = ["sh", "-c", "test \"$(id -un)\" = chaos-op"] }
timeout = "2s"

[steady_state]
before = ["web", "prometheus", "caller"]
after = ["web", "prometheus", "caller"]

[[stop_when]]
probe = "web"
consecutive_failures = 2

[[faults]]
name = "unit-check-latency"
interface = "va"
match = { cidr = "10.99.0.3" }
action = { kind = "latency", delay = "20ms" }
EOF
chmod 644 /tmp/unit-check.toml
out=$(cd /tmp && ctl run /tmp/unit-check.toml 2>&1)
code=$?
echo "$out" | tail -15
[ $code -eq 0 ] || fail "chaosctl run as a member of group chaos: exit $code"
echo "$out" | grep -q 'unit-check-latency.*affected [1-9]' || fail "the experiment's fault delayed nothing"
kill $web $prom 2>/dev/null

# A crash: systemd restarts the daemon, and what the dead one installed is gone.
[ "$(loaded)" -ge 1 ] || fail "no program loaded while a fault is in force: $(bpftool prog show)"
systemctl kill -s KILL chaos-daemon
for _ in $(seq 60); do
  sleep 0.5
  [ "$(systemctl is-active chaos-daemon)" = active ] && health >/dev/null && break
done
health >/dev/null || fail "the unit did not restart the daemon after kill -9"
say "restarted after kill -9: $(systemctl show -p NRestarts --value chaos-daemon) restart(s)"
[ "$(tree)" -eq 0 ] || fail "the latency tree outlived the killed daemon: $(tc qdisc show dev va)"
[ "$(ctl ls -q | wc -l)" -eq 0 ] || fail "faults listed after the restart: $(ctl ls)"

ctl add latency --to 10.99.0.2 --delay 10ms --iface va --ttl 5m >/dev/null || fail "add after restart"
systemctl stop chaos-daemon || fail "systemctl stop"
[ "$(loaded)" -eq 0 ] || fail "programs left after stop: $(bpftool prog show)"
[ "$(tree)" -eq 0 ] || fail "qdiscs left on va after stop: $(tc qdisc show dev va)"
[ ! -e /run/chaos-daemon ] || fail "/run/chaos-daemon left after stop: $(ls -la /run/chaos-daemon)"
dpkg --purge chaos >/dev/null || fail "dpkg --purge"
[ ! -e /usr/bin/chaos-daemon ] && [ ! -e /lib/systemd/system/chaos-daemon.service ] ||
  fail "files left after purge"
ip netns del b
say "ok: the shipped unit ran latency, an experiment with http, prometheus and command probes, restarted after kill -9, and left nothing"
