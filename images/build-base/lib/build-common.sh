# Shared by every `build` script (sourced, not run): the INPUT/OUTPUT/CACHE contract,
# `-----> ` step lines and the one clear failure line.
set -euo pipefail

INPUT=${INPUT:-${INPUT_DIR:-}}
OUTPUT=${OUTPUT:-${OUTPUT_DIR:-}}
CACHE=${CACHE:-/tmp/cache}
export INPUT OUTPUT CACHE INPUT_DIR=${INPUT} OUTPUT_DIR=${OUTPUT}

step() { echo "-----> $*"; }
info() { echo "       $*"; }
# The last line of a failed build says why, in one sentence.
fail() {
  echo "error: $*"
  exit 1
}

check_dirs() {
  [ -n "$INPUT" ] || fail "INPUT (or INPUT_DIR) is not set: where is the source?"
  [ -n "$OUTPUT" ] || fail "OUTPUT (or OUTPUT_DIR) is not set: where should the app go?"
  [ -d "$INPUT" ] || fail "the source directory $INPUT does not exist"
  [ -d "$OUTPUT" ] || fail "the output directory $OUTPUT does not exist"
  [ -w "$OUTPUT" ] || fail "the output directory $OUTPUT is not writable"
  mkdir -p "$CACHE" 2>/dev/null || fail "the cache directory $CACHE cannot be created"
  if [ -n "${HOME:-}" ]; then mkdir -p "$HOME" 2>/dev/null || true; fi
}

# Copy a directory's contents to OUTPUT, leaving out VCS data and the volume's lost+found.
copy_tree() {
  local from=$1 to=$2
  tar -C "$from" --exclude=./.git --exclude=./lost+found -cf - . \
    | tar -C "$to" --no-same-owner --no-same-permissions -xf - \
    || fail "copying the source from $from to $to failed"
}

# Keep the Procfile: the run image's `start` reads it.
keep_procfile() {
  if [ -f "$INPUT/Procfile" ] && [ ! -f "$OUTPUT/Procfile" ]; then
    cp "$INPUT/Procfile" "$OUTPUT/Procfile" || fail "copying the Procfile failed"
  fi
  if [ -f "$OUTPUT/Procfile" ]; then
    info "Procfile process types: $(sed -n 's/^\([A-Za-z0-9_-]*\):.*/\1/p' "$OUTPUT/Procfile" | tr '\n' ' ')"
  fi
}

# Run a step's command; on failure, end with one line naming the step and, when the tool said
# something recognisable, why.
run_step() {
  local what=$1
  shift
  local log
  log=$(mktemp)
  set +e
  "$@" 2>&1 | tee "$log"
  local code=${PIPESTATUS[0]}
  set -e
  if [ "$code" != 0 ]; then
    local why
    why=$(explain_failure "$log")
    rm -f "$log"
    fail "$what failed (exit code $code)${why:+: $why}"
  fi
  rm -f "$log"
}

# Pull the one meaningful sentence out of a package manager's output, when there is one. The
# patterns go from the most to the least telling.
explain_failure() {
  local log=$1 pattern line=""
  for pattern in "is not in this registry" "No matching distribution found" \
    "Could not find a version" "Read-only file system" "EROFS" "No space left on device" \
    "ENOSPC" "E404" "ETIMEDOUT|ECONNREFUSED|ENOTFOUND|Could not fetch URL"; do
    line=$(grep -m1 -E "$pattern" "$log" || true)
    [ -z "$line" ] || break
  done
  line=${line#npm ERR! }
  line=${line#npm error }
  line=${line#ERROR: }
  echo "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]\+/ /g' | cut -c1-200
}
