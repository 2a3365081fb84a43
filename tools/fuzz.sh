#!/usr/bin/env bash
# Builds nodec's libFuzzer targets with clang into build-fuzz/ and runs each
# over the committed corpus (tests/fuzz/corpus/TARGET) with the language's
# dictionary. Any finding (crash, sanitizer report, leak, timeout) is written
# to build-fuzz/findings/ and makes the script exit 1; copy it into
# tests/fuzz/regressions/TARGET/ once fixed, so the test suite replays it.
#
#   tools/fuzz.sh                 every target for 60 s
#   tools/fuzz.sh -t 1800 front   one target for 30 minutes
#   tools/fuzz.sh --ci            CI: a fixed seed and a fixed number of runs per
#                                 target (reproducible: a pass here passes there)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60 ci=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    --ci) ci=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(front csv safetensors npy)

if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found (Debian: apt-get install clang libclang-rt-14-dev): fuzzing skipped"
  exit 0
fi
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' > "$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null; then
  rm -rf "$probe"
  echo "fuzz: clang cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev): fuzzing skipped"
  exit 0
fi
rm -rf "$probe"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNODEC_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null

# Runs per target in CI: about a minute each on a 2-core machine.
declare -A ci_runs=([front]=4000 [csv]=150000 [safetensors]=250000 [npy]=250000)
mkdir -p build-fuzz/findings
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus-$t
  mkdir -p "$work"
  limit=(-max_total_time="$seconds")
  [ $ci -eq 0 ] || limit=(-runs="${ci_runs[$t]}" -seed=1)
  dict=()
  [ "$t" != front ] || dict=(-dict=tests/fuzz/node.dict)
  echo "fuzz: $t (${limit[*]})"
  if ! build-fuzz/fuzz_"$t" "${limit[@]}" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      "${dict[@]}" -artifact_prefix=build-fuzz/findings/"$t"- \
      "$work" tests/fuzz/corpus/"$t" > build-fuzz/fuzz-"$t".log 2>&1; then
    echo "fuzz: $t FOUND a failure (build-fuzz/fuzz-$t.log, build-fuzz/findings/):"
    grep -m 5 -E "ERROR|SUMMARY|Test unit written" build-fuzz/fuzz-"$t".log || tail -n 20 build-fuzz/fuzz-"$t".log
    status=1
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|DONE" build-fuzz/fuzz-"$t".log | tr '\n' ' '
    echo
  fi
done
exit $status
