# Set-up shared by the benchmarks that measure whole medseg commands (sourced, not run): the script's name for
# messages, GNU time for peak RSS, the medseg binary, a python3 with nibabel, and the memory limit.
# Sets: bench_name, medseg, nibpy, limit.
bench_name=$(basename "$0")
medseg=${MEDSEG:-.build/release/medseg}
# A run whose process tree passes this many MB (PSS) is stopped: 90% of the memory available at the start.
limit=${LIMIT_MB:-$(awk '/MemAvailable/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}
[ -x /usr/bin/time ] || { echo "$bench_name: /usr/bin/time (GNU time, Debian package 'time') is missing: it measures peak RSS" >&2; exit 1; }
[ -x "$medseg" ] || { echo "$bench_name: no $medseg; build it: swift build -c release --product medseg" >&2; exit 1; }
# Cases are written with nibabel: the first python3 that has it (pyenv's or Debian's).
nibpy=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import nibabel, numpy" 2>/dev/null; then nibpy=$p; break; fi
done
[ -n "$nibpy" ] || { echo "$bench_name: no python3 with nibabel and numpy (pip install nibabel)" >&2; exit 1; }
