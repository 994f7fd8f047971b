#!/bin/sh
# run-all.sh MODE: run mcast's tests and count them. MODE is plain, asan or
# unit (unit: only the C unit tests). Runs every unit test binary in
# $MCAST_UNIT (default build/tests) and parses its TAP, then every bats suite
# (tests/*.bats, or $MCAST_SUITES) with `bats --tap` against $MCAST_BIN.
# Suites run $MCAST_JOBS at a time (default 3).
# Prints the diagnostics of each failure, keeps full logs in
# $MCAST_LOGS/MODE (default build/test-logs/MODE), and appends one line
# "MODE PASSED FAILED SKIPPED" to $MCAST_COUNTS (default
# build/test-counts) for .ci/run's closing line. Exits 1 if anything failed.
# In asan mode sanitizer reports go to log files; each one is a failure, so a
# report under a test that ignored the exit status still fails the run.
set -u
# bash for `wait -n` (parallel suites); make calls this with sh.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

mode=${1:-plain}
case $mode in plain|asan|unit) ;; *) echo "usage: run-all.sh plain|asan|unit" >&2; exit 2 ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
unit_dir=${MCAST_UNIT:-$root/build/tests}
counts=${MCAST_COUNTS:-$root/build/test-counts}
logs=${MCAST_LOGS:-$root/build/test-logs}/$mode
# The harness suite tests the helpers, not the programs: once is enough.
suites=${MCAST_SUITES:-$(ls "$root"/tests/*.bats 2>/dev/null | if [ "$mode" = asan ]; then grep -v /00-harness.bats; else cat; fi)}
# Suites start longest first, so that the parallel jobs end together instead
# of one long suite started last running alone at the end: by the seconds
# each took in the last run of this mode (the .st files in $logs), else by
# these measured weights (seconds of a plain run; a suite not named counts
# 20). The results are still counted and shown in name order.
default_secs="20-session 160 40-repair 120 00-harness 100 80-trust 80 66-disk 65 50-sched 65
10-pack 60 68-image-fleet 40 70-admin 40 65-image-session 30 60-image 25 67-image-repair 25
81-encrypt 20"
unit_timeout=${MCAST_UNIT_TIMEOUT:-300}
export BATS_TEST_TIMEOUT="${BATS_TEST_TIMEOUT:-300}"
export MCAST_BIN="${MCAST_BIN:-$root/bin}"
# Tests may ask which run this is (helper.bash: plain_run_only).
export MCAST_RUN_MODE=$mode

mkdir -p "$logs" "$(dirname "$counts")" || exit 1

# The system python3 first on PATH, as helper.bash wants it, once for all
# tests (helper.bash would otherwise check it in every test's process).
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	mkdir -p "$logs/.mc-python3" && ln -sf /usr/bin/python3 "$logs/.mc-python3/python3" &&
		PATH=$logs/.mc-python3:$PATH
fi

# A run started from inside a bats test (the harness tests do) must not
# inherit that test's bats state.
for v in $(env | sed -n 's/^\(BATS_[A-Za-z0-9_]*\)=.*/\1/p'); do
	[ "$v" = BATS_TEST_TIMEOUT ] || unset "$v"
done
# bats puts its libexec first on PATH; that `bats` needs bash's exported
# functions, which sh drops: use the real front end.
PATH=$(printf '%s\n' "$PATH" | tr ':' '\n' | grep -v 'libexec/bats-core$' | paste -sd: -)
export PATH
# order_suites: $suites, longest first (see default_secs).
order_suites() {
	local s name secs st
	for s in $suites; do
		name=$(basename "$s" .bats)
		secs=
		if [ -f "$logs/$name.bats.tap.st" ]; then
			read -r st secs <"$logs/$name.bats.tap.st" || secs=
		fi
		case $secs in '' | *[!0-9]*)
			secs=$(printf '%s\n' $default_secs | awk -v n="$name" 'p == n { print; exit } { p = $0 }')
			;;
		esac
		echo "${secs:-20} $s"
	done | sort -k1,1nr -s | cut -d' ' -f2-
}
ordered=$(order_suites)
rm -f "$logs"/*.tap "$logs"/*.st "$logs"/san.* "$logs"/reported.* 2>/dev/null

# Sanitizers exit with statuses no program contract uses, and log to files
# (one family per suite), so a report under a test that ignored the exit
# status still fails the run.
asan_base=detect_leaks=1:exitcode=86
ubsan_base=print_stacktrace=1:halt_on_error=1:exitcode=87
user_asan=${ASAN_OPTIONS:-}
if [ "$mode" = asan ] && [ -z "$user_asan" ]; then
	export ASAN_OPTIONS="$asan_base:log_path=$logs/san.unit.asan"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-$ubsan_base:log_path=$logs/san.unit.ubsan}"
	export LSAN_OPTIONS="${LSAN_OPTIONS:-exitcode=86}"
fi

passed=0 failed=0 skipped=0

# Remove namespaces left by runs killed before their teardown.
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
	BATS_TEST_TMPDIR=$logs bash -c '. "$1/tests/helper.bash"; mc_reap_stale; mc_cleanup' _ "$root" 2>/dev/null
fi

# tap_count NAME FILE STATUS: add the results in TAP FILE of a run that exited
# with STATUS; print the failures with their diagnostics.
tap_count() {
	name=$1 file=$2 st=$3
	set -- $(awk '
		/^ok / { if ($0 ~ /# *[Ss][Kk][Ii][Pp]/) s++; else p++; next }
		/^not ok / { if ($0 ~ /# *TODO/) s++; else f++; next }
		/^1\.\.[0-9]+/ { split($0, a, "\\.\\."); plan = a[2] + 0; hasplan = 1 }
		END { printf "%d %d %d %d %d\n", p, f, s, plan, hasplan }' "$file")
	p=$1 f=$2 s=$3 plan=$4 hasplan=$5
	awk '
		/^not ok / && $0 !~ /# *TODO/ { show = 1; print "  " $0; next }
		/^(ok|not ok) / { show = 0; next }
		show && /^#/ { print "    " $0 }' "$file"
	extra=0
	ran=$((p + f + s))
	if [ "$hasplan" -eq 1 ] && [ "$plan" -ne "$ran" ]; then
		echo "  not ok - $name: planned $plan tests, ran $ran"
		extra=1
	elif [ "$hasplan" -eq 0 ]; then
		echo "  not ok - $name: no TAP plan (crashed?)"
		extra=1
	elif [ "$st" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "  not ok - $name: exited with status $st and no failing test"
		extra=1
	fi
	if [ "$extra" -eq 1 ]; then
		echo "    last lines of $file:"
		tail -n 15 "$file" | sed 's/^/    | /'
	fi
	f=$((f + extra))
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	printf 'run-all %s: %-28s passed %d, failed %d, skipped %d\n' "$mode" "$name" "$p" "$f" "$s"
}

# san_count WHAT GLOB: each new sanitizer log matching GLOB is one failure, shown.
san_count() {
	for log in $2; do
		[ -f "$log" ] || continue
		echo "  not ok - $1: sanitizer report $log"
		sed 's/^/    | /' "$log" | head -n 60
		failed=$((failed + 1))
		mv "$log" "$logs/reported.$(basename "$log")"
	done
}

start=$(date +%s)

# Unit tests of lib/: every executable in the unit directory, one after the
# other, as one job beside the suites (each binary's sanitizer reports in
# files of its own).
units=
if [ -d "$unit_dir" ]; then
	for t in "$unit_dir"/*; do
		[ -f "$t" ] && [ -x "$t" ] && units="$units $t"
	done
fi
run_units() {
	local t out
	for t in $units; do
		out=$logs/$(basename "$t").tap
		(
			[ "$mode" != asan ] || [ -n "$user_asan" ] ||
				export ASAN_OPTIONS="$asan_base:log_path=$logs/san.unit.$(basename "$t").asan" \
					UBSAN_OPTIONS="$ubsan_base:log_path=$logs/san.unit.$(basename "$t").ubsan"
			cd "$root" && exec timeout -k 5 "$unit_timeout" "$t"
		) >"$out" 2>"$out.err"
		echo $? >"$out.st"
	done
}

# bats suites against the programs in $MCAST_BIN, $MCAST_JOBS jobs at a time
# (default 3: the suites mostly wait on timers and the network; every test
# has its own namespaces, so suites never clash), longest first.
jobs=${MCAST_JOBS:-3}
running=0
run_units &
running=1
if [ "$mode" != unit ] && command -v bats >/dev/null; then
	for s in $ordered; do
		name=$(basename "$s")
		out=$logs/$name.tap
		if [ "$running" -ge "$jobs" ]; then
			wait -n
			running=$((running - 1))
		fi
		(
			[ "$mode" != asan ] || [ -n "$user_asan" ] ||
				export ASAN_OPTIONS="$asan_base:log_path=$logs/san.$name.asan" \
					UBSAN_OPTIONS="$ubsan_base:log_path=$logs/san.$name.ubsan"
			t0=$(date +%s)
			cd "$root" && bats --tap --timing "$s" >"$out" 2>&1
			echo "$? $(($(date +%s) - t0))" >"$out.st"
		) &
		running=$((running + 1))
	done
fi
wait

for t in $units; do
	out=$logs/$(basename "$t").tap
	st=$(cat "$out.st" 2>/dev/null) || st=1
	[ "$st" -eq 124 ] && echo "not ok - timed out after ${unit_timeout}s" >>"$out"
	cat "$out.err" >>"$out"
	tap_count "unit/$(basename "$t")" "$out" "$st"
	san_count "unit/$(basename "$t")" "$logs/san.unit.$(basename "$t").*"
done
[ -n "$units" ] || echo "run-all $mode: no unit test binaries in $unit_dir"

if [ "$mode" != unit ]; then
	if ! command -v bats >/dev/null; then
		echo "  not ok - bats is not installed (run make deps)"
		failed=$((failed + 1))
	else
		for s in $suites; do
			name=$(basename "$s")
			out=$logs/$name.tap
			read -r st secs <"$out.st" || { st=1 secs=?; }
			tap_count "$name ${secs}s" "$out" "$st"
			san_count "$name" "$logs/san.$name.*"
		done
	fi
fi

echo "$mode $passed $failed $skipped" >>"$counts"
echo "run-all $mode: passed $passed, failed $failed, skipped $skipped in $(($(date +%s) - start))s (logs in $logs)"
[ "$failed" -eq 0 ]
