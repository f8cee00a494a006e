# Shared by the benchmarks (sourced): `measure LABEL COMMAND…` runs the command and prints its
# seconds, rows/s (of $rows), peak RSS and peak private memory; needs $work and /usr/bin/time.
# Peak RSS counts the pages of a SQLite store mapped into memory (store.sqlite_mmap_mib),
# which are the kernel's file cache, shared and reclaimable; peak private memory (RssAnon,
# sampled every 0.1 s) is what the process itself allocated.
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" &
  local timer=$! anon=0 child key value _
  while kill -0 "$timer" 2>/dev/null; do
    # The kernel writes the children's pids with no newline, so read's status says nothing.
    child=
    { read -r child _; } 2>/dev/null <"/proc/$timer/task/$timer/children" || true
    if [[ -n $child ]]; then
      while read -r key value _; do
        [[ $key == RssAnon: ]] && ((value > anon)) && anon=$value
      done 2>/dev/null <"/proc/$child/status" || true
    fi
    sleep 0.1
  done
  wait "$timer" || { cat "$work/err"; exit 1; }
  read -r secs kb <"$work/time"
  awk -v l="$label" -v n="$rows" -v s="$secs" -v kb="$kb" -v anon="$anon" \
    'BEGIN { printf "%-22s %8d rows %7.2f s %9.0f rows/s  peak RSS %6.1f MB, private %6.1f MB\n", l, n, s, n / s, kb / 1024, anon / 1024 }'
}
