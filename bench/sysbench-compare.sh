#!/usr/bin/env bash
# Compares what a proxy costs per query: sysbench directly against one
# replica, through HAProxy (mode tcp, balance leastconn over the replicas
# sluice reads from) and through sluice, in one run on one machine, targets
# alternated, median of BENCH_REPS runs each.
#
# It starts `sluice demo` for the servers (a fresh MariaDB primary and two
# GTID replicas; its own sluice stays idle), loads sbtest, then starts the
# sluice under test (`sluice run`, default settings) and HAProxy in front of
# the same servers. For every thread count it runs oltp_point_select
# (server-side prepared statements) against each target, BENCH_REPS times,
# alternating the targets, and then oltp_read_write, where direct and
# HAProxy go to the primary (as HAProxy's users must: it cannot split reads
# from writes). It prints a Markdown table: per target the median QPS and
# p95, the ratio to direct and to HAProxy, and the proxy's CPU time per
# query (utime+stime of the proxy process from /proc/PID/stat over the run,
# divided by the queries sysbench made).
#
#   bash bench/sysbench-compare.sh                          # 30 s runs, 3 reps
#   BENCH_TIME=10 BENCH_REPS=3 bash bench/sysbench-compare.sh   # about 10 minutes
#   BENCH_SLUICE_BIN=/tmp/sluice-old bash bench/sysbench-compare.sh  # measure another build
#
# Settings (environment):
#   BENCH_TIME        seconds per run (30)
#   BENCH_REPS        runs per target and thread count; the median is shown (3)
#   BENCH_THREADS     sysbench thread counts ("1 16 64")
#   BENCH_RW_THREADS  thread counts for oltp_read_write ("16"; "" skips it)
#   BENCH_TABLES      sbtest tables (4)
#   BENCH_TABLE_SIZE  rows per table (10000)
#   BENCH_SLUICE_BIN  sluice binary to measure (built from this tree into bin/sluice)
#   BENCH_BASELINE_BIN  a second sluice binary (e.g. built from main) measured in the same
#                     run, alternated with the others, as "sluice baseline"; point selects
#                     only ("")
#   BENCH_KEEP        directory to keep every sysbench report and the logs in ("")
set -euo pipefail

BENCH_TIME=${BENCH_TIME:-30}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_THREADS=${BENCH_THREADS:-1 16 64}
BENCH_RW_THREADS=${BENCH_RW_THREADS-16}
BENCH_TABLES=${BENCH_TABLES:-4}
BENCH_TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
BENCH_SLUICE_BIN=${BENCH_SLUICE_BIN:-}
BENCH_BASELINE_BIN=${BENCH_BASELINE_BIN:-}
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

for v in BENCH_TIME BENCH_REPS BENCH_TABLES BENCH_TABLE_SIZE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a positive whole number"
done
for n in $BENCH_THREADS $BENCH_RW_THREADS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "thread count $n: want a positive whole number"
done
for prog in go sysbench mariadb mariadbd haproxy; do
	have "$prog" || die "$prog not found; run: bash scripts/setup.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
demo_pid=""
sluice_pid=""
base_pid=""
haproxy_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "$haproxy_pid" "$sluice_pid" "$base_pid"; do
		if [[ -n $p ]]; then
			kill -TERM "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	if [[ -n $demo_pid ]]; then
		# sluice demo stops its servers and removes their data on SIGTERM.
		kill -TERM "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
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
sluice_bin=${BENCH_SLUICE_BIN:-bin/sluice}
[[ -f $sluice_bin && -x $sluice_bin ]] || die "BENCH_SLUICE_BIN=$sluice_bin is not an executable"

say "starting sluice demo for the servers (MariaDB primary + 2 replicas)"
bin/sluice demo --listen 127.0.0.1:0 --http "" --env-file "$work/demo.env" >"$work/demo.log" 2>&1 &
demo_pid=$!
deadline=$((SECONDS + 180))
until [[ -s $work/demo.env ]]; do
	if ! kill -0 "$demo_pid" 2>/dev/null; then
		tail -n 40 "$work/demo.log" >&2
		demo_pid=""
		die "sluice demo exited before it was ready (log above)"
	fi
	((SECONDS < deadline)) || die "sluice demo not ready after 180s; log: $work/demo.log"
	sleep 0.2
done
# shellcheck disable=SC1091
source "$work/demo.env"
: "${SLUICE_PRIMARY:?} ${SLUICE_REPLICA1:?}"
replicas=()
for v in "${!SLUICE_REPLICA@}"; do replicas+=("${!v}"); done
say "primary $SLUICE_PRIMARY, replicas ${replicas[*]}"

# sluice_yaml PORT HTTP_PORT NAME: default settings, the demo's servers.
sluice_yaml() {
	echo "listen: 127.0.0.1:$1"
	echo "http_listen: 127.0.0.1:$2"
	echo "failover: {state_file: $work/$3-state.json}"
	echo "users: [{name: app, password: app}]"
	echo "monitor: {user: sluice_monitor, password: monitor}"
	echo "servers:"
	echo "  - {name: db1, address: $SLUICE_PRIMARY}"
	local i=2 r
	for r in "${replicas[@]}"; do
		echo "  - {name: db$i, address: $r}"
		i=$((i + 1))
	done
}
sport=$(free_port)
hport=$(free_port)
sluice_yaml "$sport" "$hport" sluice >"$work/sluice.yaml"
"$sluice_bin" run -c "$work/sluice.yaml" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
wait_until 30 "sluice on 127.0.0.1:$sport" sql "127.0.0.1:$sport" "SELECT 1"
say "sluice under test: $sluice_bin on 127.0.0.1:$sport (pid $sluice_pid, admin API 127.0.0.1:$hport)"
if [[ -n $BENCH_BASELINE_BIN ]]; then
	[[ -f $BENCH_BASELINE_BIN && -x $BENCH_BASELINE_BIN ]] || die "BENCH_BASELINE_BIN=$BENCH_BASELINE_BIN is not an executable"
	bport=$(free_port)
	bhport=$(free_port)
	sluice_yaml "$bport" "$bhport" baseline >"$work/baseline.yaml"
	"$BENCH_BASELINE_BIN" run -c "$work/baseline.yaml" >"$work/baseline.log" 2>&1 &
	base_pid=$!
	wait_until 30 "baseline sluice on 127.0.0.1:$bport (log: $work/baseline.log)" sql "127.0.0.1:$bport" "SELECT 1"
	say "baseline sluice: $BENCH_BASELINE_BIN on 127.0.0.1:$bport (pid $base_pid, admin API 127.0.0.1:$bhport)"
fi

aport=$(free_port)
pport=$(free_port)
{
	cat <<-EOF
		global
		    maxconn 4096
		    nbthread 1
		defaults
		    mode tcp
		    timeout connect 5s
		    timeout client 1h
		    timeout server 1h
		listen replicas
		    bind 127.0.0.1:$aport
		    balance leastconn
	EOF
	i=1
	for r in "${replicas[@]}"; do
		echo "    server replica$i $r"
		i=$((i + 1))
	done
	cat <<-EOF
		listen primary
		    bind 127.0.0.1:$pport
		    server primary $SLUICE_PRIMARY
	EOF
} >"$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
wait_until 30 "haproxy on 127.0.0.1:$aport" sql "127.0.0.1:$aport" "SELECT 1"
wait_until 30 "haproxy on 127.0.0.1:$pport" sql "127.0.0.1:$pport" "SELECT 1"
hversion=$(haproxy -v | sed -n '1s/.*version \([^ ]*\).*/\1/p')
say "haproxy $hversion (mode tcp, balance leastconn over the replicas on $aport; primary on $pport)"

sb_args() {
	echo --db-driver=mysql --mysql-host="$(host_of "$1")" --mysql-port="$(port_of "$1")" \
		--mysql-user=app --mysql-password=app --mysql-db=sbtest \
		--tables="$BENCH_TABLES" --table-size="$BENCH_TABLE_SIZE" \
		--threads="$2" --db-ps-mode=auto --report-interval=0
}

say "loading sbtest ($BENCH_TABLES tables x $BENCH_TABLE_SIZE rows) on the primary"
sql "$SLUICE_PRIMARY" "CREATE DATABASE sbtest"
# shellcheck disable=SC2046
sysbench $(sb_args "$SLUICE_PRIMARY" 4) oltp_read_write prepare >"$work/prepare.txt" 2>&1 ||
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

tck=$(getconf CLK_TCK)
# cpu_ticks PID: utime+stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A addr pid label
# run WORKLOAD THREADS TARGET REP: prints "qps p95 errors cpu_us_per_query".
run() {
	local workload=$1 threads=$2 target=$3 rep=$4 out="$work/$1-$2-$3-$4.txt"
	say "$workload, $threads threads, via ${label[$target]} (run $rep)"
	local before=0 after=0
	[[ -n ${pid[$target]} ]] && before=$(cpu_ticks "${pid[$target]}")
	# shellcheck disable=SC2046
	if ! sysbench $(sb_args "${addr[$target]}" "$threads") --time="$BENCH_TIME" "$workload" run >"$out" 2>&1; then
		# Reported in the table, not fatal: a proxy that makes a run fail
		# (e.g. by exhausting the server's prepared statements) is a result.
		say "sysbench $workload via $target failed: $(grep -m1 'MySQL error' "$out" || tail -n1 "$out")"
		echo "- - failed -"
		return 0
	fi
	[[ -n ${pid[$target]} ]] && after=$(cpu_ticks "${pid[$target]}")
	local queries qps p95 errs
	queries=$(sed -n 's/^ *queries: *\([0-9]*\) *(.*/\1/p' "$out")
	qps=$(sed -n 's/^ *queries: *[0-9]* *(\([0-9.]*\) per sec.)/\1/p' "$out")
	p95=$(sed -n 's/^ *95th percentile: *\([0-9.]*\)/\1/p' "$out")
	errs=$(sed -n 's/^ *ignored errors: *\([0-9]*\) .*/\1/p' "$out")
	[[ -n $queries && -n $qps && -n $p95 && -n $errs ]] || {
		cat "$out" >&2
		die "cannot read the sysbench report of $workload via $target"
	}
	local cpu=-
	if [[ -n ${pid[$target]} ]]; then
		cpu=$(awk -v d=$((after - before)) -v t="$tck" -v q="$queries" 'BEGIN { printf "%.1f", d / t * 1e6 / q }')
	fi
	say "  $qps QPS, p95 $p95 ms, $errs errors, proxy CPU $cpu µs/query"
	echo "$qps $p95 $errs $cpu"
}

median() {
	[[ $# -gt 0 ]] || {
		echo 0
		return
	}
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A qps p95 errs cpu fails
# bench WORKLOAD THREADS TARGET...: BENCH_REPS rounds over the targets,
# the first target of each round rotating, so none always runs first.
bench() {
	local w=$1 n=$2
	shift 2
	local targets=("$@") rep i k t
	local -A q p c e
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		for ((i = 0; i < ${#targets[@]}; i++)); do
			k=$(((i + rep - 1) % ${#targets[@]}))
			t=${targets[$k]}
			read -r a b d f <<<"$(run "$w" "$n" "$t" "$rep")"
			[[ -n $f ]] || die "run $w $n $t $rep failed"
			if [[ $d == failed ]]; then
				fails[$w.$n.$t]=$((${fails[$w.$n.$t]:-0} + 1))
				continue
			fi
			q[$t]+="$a " p[$t]+="$b " e[$t]=$((${e[$t]:-0} + d)) c[$t]+="$f "
		done
	done
	for t in "${targets[@]}"; do
		# shellcheck disable=SC2086
		qps[$w.$n.$t]=$(median ${q[$t]})
		# shellcheck disable=SC2086
		p95[$w.$n.$t]=$(median ${p[$t]})
		errs[$w.$n.$t]=${e[$t]:-0}
		[[ -n ${fails[$w.$n.$t]:-} ]] && errs[$w.$n.$t]+=" (${fails[$w.$n.$t]} of $BENCH_REPS runs failed)"
		if [[ -z ${c[$t]:-} || ${c[$t]} == *-* ]]; then
			cpu[$w.$n.$t]=-
		else
			# shellcheck disable=SC2086
			cpu[$w.$n.$t]=$(median ${c[$t]})
		fi
	done
}

addr[direct]=${replicas[0]} pid[direct]="" label[direct]="direct (one replica)"
addr[haproxy]=127.0.0.1:$aport pid[haproxy]=$haproxy_pid label[haproxy]="HAProxy $hversion (tcp, leastconn, ${#replicas[@]} replicas)"
addr[sluice]=127.0.0.1:$sport pid[sluice]=$sluice_pid label[sluice]="sluice (reads on ${#replicas[@]} replicas)"
addr[base]=127.0.0.1:${bport:-} pid[base]=$base_pid label[base]="sluice baseline (reads on ${#replicas[@]} replicas)"
addr[base_p]=127.0.0.1:${bport:-} pid[base_p]=$base_pid label[base_p]="sluice baseline (transactions on the primary)"
addr[direct_p]=$SLUICE_PRIMARY pid[direct_p]="" label[direct_p]="direct (primary)"
addr[haproxy_p]=127.0.0.1:$pport pid[haproxy_p]=$haproxy_pid label[haproxy_p]="HAProxy $hversion (tcp, primary)"
addr[sluice_p]=127.0.0.1:$sport pid[sluice_p]=$sluice_pid label[sluice_p]="sluice (transactions on the primary)"

ps_targets=(direct haproxy sluice)
rw_targets=(direct_p haproxy_p sluice_p)
if [[ -n $base_pid ]]; then
	# Point selects only: a build without shared statements can fill the
	# primary's max_prepared_stmt_count in oltp_read_write, and then the
	# other targets' prepares fail too.
	ps_targets+=(base)
fi
for n in $BENCH_THREADS; do
	bench oltp_point_select "$n" "${ps_targets[@]}"
done
for n in $BENCH_RW_THREADS; do
	bench oltp_read_write "$n" "${rw_targets[@]}"
done

cpus=$(nproc 2>/dev/null || echo "?")
echo
echo "sysbench $(sysbench --version | awk '{print $2}'), MariaDB $(sql "$SLUICE_PRIMARY" "SELECT VERSION()"), HAProxy $hversion," \
	"$cpus CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)); prepared statements (--db-ps-mode=auto)," \
	"${BENCH_TIME}s per run, median of $BENCH_REPS alternated runs, $BENCH_TABLES tables x $BENCH_TABLE_SIZE rows;" \
	"sluice: $sluice_bin${BENCH_BASELINE_BIN:+, baseline: $BENCH_BASELINE_BIN}"
echo
echo "| workload | threads | target | QPS | p95 ms | ratio vs direct | ratio vs HAProxy | proxy CPU µs/query | errors |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
row() {
	local w=$1 n=$2 t=$3 d=$4 h=$5
	printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n' "$w" "$n" "${label[$t]}" "${qps[$w.$n.$t]}" "${p95[$w.$n.$t]}" \
		"$(ratio "${qps[$w.$n.$t]}" "${qps[$w.$n.$d]}")" "$(ratio "${qps[$w.$n.$t]}" "${qps[$w.$n.$h]}")" \
		"${cpu[$w.$n.$t]}" "${errs[$w.$n.$t]}"
}
for n in $BENCH_THREADS; do
	for t in "${ps_targets[@]}"; do row oltp_point_select "$n" "$t" direct haproxy; done
done
for n in $BENCH_RW_THREADS; do
	for t in "${rw_targets[@]}"; do row oltp_read_write "$n" "$t" direct_p haproxy_p; done
done
echo
echo "Notes:"
echo "- point selects: direct goes to one replica; HAProxy and sluice spread them over the same ${#replicas[@]} replicas."
echo "  oltp_read_write: direct and HAProxy go to the primary; sluice runs its transactions there too."
echo "- everything shares the same $cpus CPUs: sysbench, the proxies and the three MariaDB servers; the"
echo "  ratios are what each proxy costs per query, not what it would reach on its own machine."
for n in $BENCH_THREADS; do
	r=$(ratio "${qps[oltp_point_select.$n.sluice]}" "${qps[oltp_point_select.$n.haproxy]}")
	echo "- point select, $n threads: sluice / HAProxy = $r; CPU per query sluice ${cpu[oltp_point_select.$n.sluice]} µs, HAProxy ${cpu[oltp_point_select.$n.haproxy]} µs"
done
