#!/usr/bin/env bash
# Compares sysbench through sluice with the same workload run directly
# against the primary and, when haproxy is installed, through HAProxy in TCP
# mode (the usual baseline for a MySQL proxy), all in one run on one machine.
#
# It builds bin/sluice, starts `sluice demo` (a fresh MariaDB primary, two
# replicas and sluice in front of them), loads sbtest, runs
# oltp_point_select and oltp_read_write with server-side prepared statements
# for BENCH_TIME seconds per target, prints a Markdown table and removes
# everything it started when it exits.
#
#   bash bench/sysbench-compare.sh                    # 30 s per run, 16 threads
#   BENCH_TIME=10 BENCH_THREADS=32 bash bench/sysbench-compare.sh
#
# Settings (environment):
#   BENCH_TIME        seconds per run (30)
#   BENCH_THREADS     sysbench threads (16)
#   BENCH_TABLES      sbtest tables (4)
#   BENCH_TABLE_SIZE  rows per table (10000)
#   BENCH_WORKLOADS   sysbench workloads ("oltp_point_select oltp_read_write")
#   BENCH_KEEP        directory to keep every sysbench report and the logs in ("")
set -euo pipefail

BENCH_TIME=${BENCH_TIME:-30}
BENCH_THREADS=${BENCH_THREADS:-16}
BENCH_TABLES=${BENCH_TABLES:-4}
BENCH_TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
BENCH_WORKLOADS=${BENCH_WORKLOADS:-oltp_point_select oltp_read_write}
BENCH_KEEP=${BENCH_KEEP:-}

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Debian keeps mariadbd and haproxy in /usr/sbin.
export PATH="$PATH:/usr/sbin:/usr/local/sbin"
cd "$(dirname "$0")/.."

for v in BENCH_TIME BENCH_THREADS BENCH_TABLES BENCH_TABLE_SIZE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive whole number"
done
for prog in go sysbench mariadb mariadbd; do
	have "$prog" || die "$prog not found; run: bash scripts/setup.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
sluice_pid=""
haproxy_pid=""
nostats_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $nostats_pid ]]; then
		kill -TERM "$nostats_pid" 2>/dev/null || true
		wait "$nostats_pid" 2>/dev/null || true
	fi
	if [[ -n $haproxy_pid ]]; then
		kill "$haproxy_pid" 2>/dev/null || true
		wait "$haproxy_pid" 2>/dev/null || true
	fi
	if [[ -n $sluice_pid ]]; then
		# sluice demo stops its servers and removes their data on SIGTERM.
		kill -TERM "$sluice_pid" 2>/dev/null || true
		wait "$sluice_pid" 2>/dev/null || true
	fi
	if [[ -n $BENCH_KEEP ]]; then
		mkdir -p "$BENCH_KEEP"
		cp -r "$work"/. "$BENCH_KEEP"/
		say "reports and logs kept in $BENCH_KEEP"
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1: nothing answers there.
free_port() {
	local port i
	for i in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found"
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what"
		sleep 0.2
	done
}

host_of() { echo "${1%:*}"; }
port_of() { echo "${1##*:}"; }

# sql ADDR QUERY: one query as the app user, tab-separated, no headers.
sql() {
	mariadb --no-defaults -h"$(host_of "$1")" -P"$(port_of "$1")" -uapp -papp -N -B -e "$2"
}

say "building bin/sluice"
go build -o bin/sluice ./cmd/sluice

say "starting sluice demo (MariaDB primary + 2 replicas + sluice)"
bin/sluice demo --listen 127.0.0.1:0 --http "" --env-file "$work/demo.env" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
deadline=$((SECONDS + 180))
until [[ -s $work/demo.env ]]; do
	if ! kill -0 "$sluice_pid" 2>/dev/null; then
		tail -n 40 "$work/sluice.log" >&2
		sluice_pid=""
		die "sluice demo exited before it was ready (log above)"
	fi
	((SECONDS < deadline)) || die "sluice demo not ready after 180s; log: $work/sluice.log"
	sleep 0.2
done
# shellcheck disable=SC1091
source "$work/demo.env"
: "${SLUICE_ADDR:?} ${SLUICE_PRIMARY:?} ${SLUICE_REPLICA1:?}"
replicas=()
for v in "${!SLUICE_REPLICA@}"; do replicas+=("${!v}"); done
say "sluice $SLUICE_ADDR, primary $SLUICE_PRIMARY, replicas ${replicas[*]}"

targets=(direct sluice nostats)
declare -A addr=([direct]=$SLUICE_PRIMARY [sluice]=$SLUICE_ADDR)
declare -A label=(
	[direct]="direct (primary)"
	[sluice]="sluice (reads on ${#replicas[@]} replicas)"
	[nostats]="sluice, statistics off"
	[haproxy]="haproxy (tcp, primary)"
)

# A second sluice in front of the same servers, without metrics, digests
# and slow log: the difference to "sluice" is what statistics cost.
nport=$(free_port)
{
	echo "listen: 127.0.0.1:$nport"
	echo 'http_listen: ""'
	echo "users: [{name: app, password: app}]"
	echo "monitor: {user: sluice_monitor, password: monitor}"
	echo "servers:"
	echo "  - {name: db1, address: $SLUICE_PRIMARY}"
	i=2
	for r in "${replicas[@]}"; do
		echo "  - {name: db$i, address: $r}"
		i=$((i + 1))
	done
} >"$work/nostats.yaml"
bin/sluice run -c "$work/nostats.yaml" --no-stats >"$work/sluice-nostats.log" 2>&1 &
nostats_pid=$!
wait_until 30 "sluice without statistics on 127.0.0.1:$nport" sql "127.0.0.1:$nport" "SELECT 1"
addr[nostats]=127.0.0.1:$nport
if have haproxy; then
	hport=$(free_port)
	cat >"$work/haproxy.cfg" <<-EOF
		global
		    maxconn 4096
		defaults
		    mode tcp
		    timeout connect 5s
		    timeout client 1h
		    timeout server 1h
		listen mysql
		    bind 127.0.0.1:$hport
		    balance first
		    server primary $SLUICE_PRIMARY
	EOF
	haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
	haproxy_pid=$!
	wait_until 30 "haproxy on 127.0.0.1:$hport" sql "127.0.0.1:$hport" "SELECT 1"
	addr[haproxy]=127.0.0.1:$hport
	targets+=(haproxy)
	say "haproxy $(haproxy -v | sed -n '1s/.*version \([^ ]*\).*/\1/p') on 127.0.0.1:$hport (mode tcp, balance first, primary only)"
else
	say "haproxy not installed: no HAProxy baseline (bash scripts/setup.sh installs it)"
fi

sb_args() {
	echo --db-driver=mysql --mysql-host="$(host_of "$1")" --mysql-port="$(port_of "$1")" \
		--mysql-user=app --mysql-password=app --mysql-db=sbtest \
		--tables="$BENCH_TABLES" --table-size="$BENCH_TABLE_SIZE" \
		--threads="$BENCH_THREADS" --db-ps-mode=auto --report-interval=0
}

say "loading sbtest ($BENCH_TABLES tables x $BENCH_TABLE_SIZE rows) on the primary"
sql "$SLUICE_PRIMARY" "CREATE DATABASE sbtest"
# shellcheck disable=SC2046
sysbench $(sb_args "$SLUICE_PRIMARY") oltp_read_write prepare >"$work/prepare.txt" 2>&1 ||
	{
		cat "$work/prepare.txt" >&2
		die "sysbench prepare failed"
	}
# The replicas have everything once they applied the primary's last GTID.
target_gtid=$(sql "$SLUICE_PRIMARY" "SELECT @@gtid_binlog_pos")
caught_up() {
	local r
	for r in "${replicas[@]}"; do
		[[ $(sql "$r" "SELECT @@gtid_current_pos") == "$target_gtid" ]] || return 1
	done
}
wait_until 120 "the replicas to apply the load (GTID $target_gtid)" caught_up
for r in "${replicas[@]}"; do
	n=$(sql "$r" "SELECT COUNT(*) FROM sbtest.sbtest$BENCH_TABLES")
	[[ $n == "$BENCH_TABLE_SIZE" ]] || die "replica $r has $n rows in sbtest$BENCH_TABLES, want $BENCH_TABLE_SIZE"
done

# run WORKLOAD TARGET: prints "qps p95 errors".
run() {
	local workload=$1 target=$2 out="$work/$1-$2.txt"
	say "$workload via ${label[$target]}: ${BENCH_TIME}s, $BENCH_THREADS threads"
	# shellcheck disable=SC2046
	if ! sysbench $(sb_args "${addr[$target]}") --time="$BENCH_TIME" "$workload" run >"$out" 2>&1; then
		cat "$out" >&2
		die "sysbench $workload via $target failed"
	fi
	local qps p95 errs
	qps=$(sed -n 's/^ *queries: *[0-9]* *(\([0-9.]*\) per sec.)/\1/p' "$out")
	p95=$(sed -n 's/^ *95th percentile: *\([0-9.]*\)/\1/p' "$out")
	errs=$(sed -n 's/^ *ignored errors: *\([0-9]*\) .*/\1/p' "$out")
	[[ -n $qps && -n $p95 && -n $errs ]] || {
		cat "$out" >&2
		die "cannot read the sysbench report of $workload via $target"
	}
	echo "$qps $p95 $errs"
}

declare -A qps p95 errs
for w in $BENCH_WORKLOADS; do
	for t in "${targets[@]}"; do
		res=$(run "$w" "$t")
		read -r qps[$w.$t] p95[$w.$t] errs[$w.$t] <<<"$res"
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

cpus=$(nproc 2>/dev/null || echo "?")
echo
echo "sysbench $(sysbench --version | awk '{print $2}'), MariaDB $(sql "$SLUICE_PRIMARY" "SELECT VERSION()"), $cpus CPUs;" \
	"$BENCH_THREADS threads, prepared statements (--db-ps-mode=auto), ${BENCH_TIME}s per run," \
	"$BENCH_TABLES tables x $BENCH_TABLE_SIZE rows"
echo
echo "| workload | target | QPS | p95 ms | ratio vs direct | errors |"
echo "|---|---|---:|---:|---:|---:|"
for w in $BENCH_WORKLOADS; do
	for t in "${targets[@]}"; do
		printf '| %s | %s | %.1f | %s | %s | %s |\n' "$w" "${label[$t]}" "${qps[$w.$t]}" "${p95[$w.$t]}" \
			"$(ratio "${qps[$w.$t]}" "${qps[$w.direct]}")" "${errs[$w.$t]}"
	done
done
echo
echo "Notes:"
echo "- direct and haproxy send every statement to the primary; through sluice the point selects"
echo "  go to the ${#replicas[@]} replicas (what an operator puts sluice in for), while oltp_read_write's"
echo "  transactions all run on the primary. Everything shares the same $cpus CPUs: sysbench, sluice,"
echo "  haproxy and the three MariaDB servers."
for w in $BENCH_WORKLOADS; do
	r=$(ratio "${qps[$w.sluice]}" "${qps[$w.nostats]}")
	echo "- $w: QPS with statistics / without: $r (statistics cost $(awk -v r="$r" 'BEGIN { printf "%.1f%%", (1 - r) * 100 }'); goal < 5%)"
done
if [[ " ${targets[*]} " == *" haproxy "* && " $BENCH_WORKLOADS " == *" oltp_point_select "* ]]; then
	r=$(ratio "${qps[oltp_point_select.sluice]}" "${qps[oltp_point_select.haproxy]}")
	verdict=$(awk -v r="$r" 'BEGIN { if (r >= 1) printf "met (%.0f%% ahead)", (r - 1) * 100; else printf "missed: %.0f%% short", (1 - r) * 100 }')
	echo "- point-select QPS, sluice / haproxy: $r (target >= 1.00: $verdict)"
fi
