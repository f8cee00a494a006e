# Shared by the sync benchmarks (sourced): `measure LABEL COMMAND…` runs the command and
# prints its seconds, rows/s (of $rows) and peak RSS; needs $work and /usr/bin/time.
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs kb <"$work/time"
  awk -v l="$label" -v n="$rows" -v s="$secs" -v kb="$kb" \
    'BEGIN { printf "%-22s %8d rows %7.2f s %9.0f rows/s  peak RSS %6.1f MB\n", l, n, s, n / s, kb / 1024 }'
}
