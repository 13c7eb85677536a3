# Shared by every `start` script (sourced, not run): the process type, the Procfile, one clear
# failure line. `start` runs under supervisord as mop, in /mnt/app, with PORT set.
set -euo pipefail

APP_DIR=${APP_DIR:-/mnt/app}
PROCESS_TYPE=${1:-web}
export PORT=${PORT:-5000}

fail() {
  echo "error: $*" >&2
  exit 1
}

cd "$APP_DIR" 2>/dev/null || fail "the app directory $APP_DIR does not exist"
case "$PORT" in
  '' | *[!0-9]*) fail "PORT must be a number, not '$PORT'" ;;
esac

# The command for a process type in the Procfile, empty when there is none.
procfile_command() {
  local type=$1 line
  [ -f "$APP_DIR/Procfile" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    if [[ $line =~ ^[[:space:]]*([A-Za-z0-9_-]+)[[:space:]]*:[[:space:]]*(.*)$ ]] \
      && [ "${BASH_REMATCH[1]}" = "$type" ]; then
      printf '%s' "${BASH_REMATCH[2]}"
      return 0
    fi
  done < "$APP_DIR/Procfile"
}

# Run the Procfile's command for the process type when there is one. bash execs a lone command
# itself, so signals from supervisord reach the app directly.
run_procfile_if_present() {
  local command
  command=$(procfile_command "$PROCESS_TYPE")
  if [ -n "$command" ]; then
    echo "-----> start $PROCESS_TYPE (Procfile): $command"
    exec bash -c "$command"
  fi
}

# Only `web` has a language default; other process types need a Procfile line.
require_web_default() {
  [ "$PROCESS_TYPE" = web ] \
    || fail "there is no '$PROCESS_TYPE' process type in the Procfile"
}
