# pnpm and yarn through corepack (sourced by `build` after build-common.sh). The Node.js releases
# the platform mounts hold node alone, so corepack itself comes from the npm registry once per
# app's build cache (npm checks its integrity). Every package manager corepack fetches is pinned
# by the sha512 the registry publishes for it, so corepack checks what it downloads:
#   pnpm, yarn 1   the package's dist.integrity;
#   yarn 2 and on  the sha512 of bin/yarn.js in @yarnpkg/cli-dist, read from a tarball npm
#                  fetched and checked (corepack keeps that one file, and hashes it).
# A `+sha512.…` (or other) hash in packageManager is the app's own pin and is used as written.

# Pinned: the newest corepack that runs on Node.js 20 (0.35 and on need 22.22 or 24.15), and the
# newest that runs on Node.js 18 for apps still there.
node_release=${SLIPWAY_NODE_VERSION:-$(node -p 'process.versions.node')}
if [ "${node_release%%.*}" -lt 20 ]; then
  COREPACK_VERSION=0.33.0
else
  COREPACK_VERSION=0.34.7
fi
COREPACK_DIR=$CACHE/corepack/$COREPACK_VERSION
RESOLVED_DIR=$CACHE/corepack/resolved  # <name>@<version or major>: the spec last resolved
RESOLVE_AGAIN_MINUTES=1440  # a major ("9") is looked up again after a day; a version never
export COREPACK_HOME=$CACHE/corepack/home COREPACK_ENABLE_DOWNLOAD_PROMPT=0 \
  COREPACK_ENABLE_AUTO_PIN=0 COREPACK_ENABLE_STRICT=0 COREPACK_INTEGRITY_KEYS=0 \
  COREPACK_NPM_REGISTRY=${COREPACK_NPM_REGISTRY:-https://registry.npmjs.org}
# (COREPACK_INTEGRITY_KEYS=0: corepack's own check needs the npm registry's signatures, which a
# mirror may not carry; the hash in every spec below is checked instead.)

corepack() { node "$COREPACK_DIR/lib/node_modules/corepack/dist/corepack.js" "$@"; }

ensure_corepack() {
  [ -f "$COREPACK_DIR/lib/node_modules/corepack/dist/corepack.js" ] && return 0
  info "fetching corepack $COREPACK_VERSION from the npm registry (once for this build cache)"
  rm -rf "$COREPACK_DIR.part"
  NODE_NO_WARNINGS=1 run_step "fetching corepack $COREPACK_VERSION" npm install --global --prefix "$COREPACK_DIR.part" \
    --no-audit --no-fund "corepack@$COREPACK_VERSION"
  rm -rf "$COREPACK_DIR" && mv "$COREPACK_DIR.part" "$COREPACK_DIR"
}

# The newest version in `npm view`'s JSON answer (one object or a list) and its integrity as hex,
# on one line: "<version> <sha512 hex>".
newest_with_integrity() {
  node -e '
    const semver = require(process.argv[1]);
    const found = [].concat(JSON.parse(require("fs").readFileSync(0, "utf8") || "[]"));
    found.sort((a, b) => semver.compare(a.version, b.version));
    const last = found.pop();
    if (!last) process.exit(1);
    const integrity = last["dist.integrity"] || "";
    if (!integrity.startsWith("sha512-")) process.exit(1);
    console.log(last.version, Buffer.from(integrity.slice(7), "base64").toString("hex"));
  ' /usr/local/lib/slipway/node/node_modules/semver
}

# "<version>+sha512.<hex>" for a package manager and a version or major.
resolve_spec() {
  local name=$1 wanted=$2 package=$1 answer version hex work why
  [ "$name" = yarn ] && [ "${wanted%%.*}" -ge 2 ] && package=@yarnpkg/cli-dist
  local said
  said=$(mktemp)
  answer=$(npm view --json "$package@$wanted" version dist.integrity 2>"$said" \
    | newest_with_integrity) || {
    why=$(explain_failure "$said")
    fail "the npm registry gave no $package@$wanted (for $name $wanted)${why:+: $why}"
  }
  rm -f "$said"
  read -r version hex <<<"$answer"
  if [ "$package" = @yarnpkg/cli-dist ]; then
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "$package@$version" >/dev/null 2>&1) \
      || fail "$package@$version could not be fetched from the npm registry"
    hex=$(tar -xzOf "$work"/*.tgz package/bin/yarn.js | sha512sum | cut -d' ' -f1)
    rm -rf "$work"
  fi
  echo "$version+sha512.$hex"
}

# Sets pm_spec ("9.15.9+sha512.…") and pm_version for $pm_name and the wanted $pm_wanted.
pin_package_manager() {
  local saved=$RESOLVED_DIR/$pm_name@${pm_wanted%%+*}
  if [[ $pm_wanted == *+* ]]; then
    pm_spec=$pm_wanted
  elif [ -s "$saved" ] && { [[ $pm_wanted == *.*.* ]] \
    || [ -n "$(find "$saved" -mmin -"$RESOLVE_AGAIN_MINUTES")" ]; }; then
    pm_spec=$(cat "$saved")
  else
    if ! pm_spec=$(resolve_spec "$pm_name" "$pm_wanted"); then
      echo "$pm_spec"  # resolve_spec's error line
      exit 1
    fi
    mkdir -p "$RESOLVED_DIR" && echo "$pm_spec" >"$saved" || true
  fi
  pm_version=${pm_spec%%+*}
}

# The package manager, fetched by corepack the first time (and checked against its hash).
prepare_package_manager() {
  ensure_corepack
  pin_package_manager
  # (corepack writes .corepack last, once the download matched its hash)
  [ ! -f "$COREPACK_HOME/v1/$pm_name/$pm_version/.corepack" ] || return 0
  info "fetching $pm_name $pm_version through corepack (once for this build cache)"
  local said
  said=$(corepack "$pm_name@$pm_spec" --version 2>&1) \
    || fail "corepack could not provide $pm_name $pm_version: $(echo "$said" | grep -m1 -E 'Error|error' | cut -c1-200)"
}

# (NODE_NO_WARNINGS: the package managers' use of deprecated Node.js APIs is not the app's news.)
pm() { NODE_NO_WARNINGS=1 corepack "$pm_name@$pm_spec" "$@"; }

# -- install, build, prune ----------------------------------------------------------------------

pm_is_berry() { [ "$pm_name" = yarn ] && [ "${pm_version%%.*}" -ge 2 ]; }

# Yarn 2+ installs into node_modules, as npm does, unless .yarnrc.yml names a nodeLinker: with
# Plug'n'Play (nodeLinker: pnp) the packages stay zipped in .yarn/cache, which goes into the slug,
# and the run image loads .pnp.cjs into every node.
berry_settings() {
  export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=0 YARN_GLOBAL_FOLDER=$CACHE/yarn-berry
  if grep -qsE '^nodeLinker:' .yarnrc.yml; then
    info "nodeLinker: $(sed -n 's/^nodeLinker:[[:space:]]*//p' .yarnrc.yml | tr -d "\"'") (.yarnrc.yml)"
    if grep -qsE '^nodeLinker:[[:space:]]*["'"'"']?pnp' .yarnrc.yml; then
      export YARN_ENABLE_GLOBAL_CACHE=false
    fi
  else
    export YARN_NODE_LINKER=node-modules
    info "nodeLinker: node-modules (.yarnrc.yml names none)"
  fi
}

pm_install_command() {
  local frozen=""
  case $pm_name in
    pnpm)
      pm_install=(install "--config.store-dir=$CACHE/pnpm-store"
        --config.confirmModulesPurge=false --reporter=append-only)
      [ ! -f pnpm-lock.yaml ] || frozen=--frozen-lockfile
      ;;
    yarn)
      if pm_is_berry; then
        pm_install=(install)
        [ ! -f yarn.lock ] || frozen=--immutable
      else
        pm_install=(install --non-interactive --production=false --cache-folder "$CACHE/yarn")
        [ ! -f yarn.lock ] || frozen=--frozen-lockfile
      fi
      ;;
  esac
  [ -z "$frozen" ] || pm_install+=("$frozen")
  pm_install_shown="$pm_name install${frozen:+ $frozen}"
}

# Why an install failed, in one sentence: a lockfile that does not match package.json says so.
pm_install_failure() {
  local log=$1 lock=yarn.lock
  [ "$pm_name" = pnpm ] && lock=pnpm-lock.yaml
  if grep -qE 'ERR_PNPM_OUTDATED_LOCKFILE|lockfile needs to be updated|YN0028' "$log"; then
    echo "$lock does not match package.json (run $pm_name install and commit the lockfile)"
  else
    explain_failure "$log"
  fi
}

pm_install_dependencies() {
  [ "$pm_name" = yarn ] && pm_is_berry && berry_settings
  pm_install_command
  step "Installing dependencies ($pm_install_shown)"
  local log code why
  log=$(mktemp)
  set +e
  pm "${pm_install[@]}" 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  set -e
  why=$(pm_install_failure "$log")
  rm -f "$log"
  [ "$code" = 0 ] \
    || fail "installing the dependencies with $pm_install_shown failed (exit code $code)${why:+: $why}"
}

pm_run_build() {
  step "Running $pm_name run build"
  run_step "$pm_name run build" pm run build
}

# Dev dependencies: pnpm prunes them (pnpm prune --prod) and yarn 1 installs again for production
# from its cache; yarn 2+ keeps them (its production-only install is a plugin's command with
# workspace rules of its own).
pm_prune() {
  case $pm_name in
    pnpm)
      step "Pruning dev dependencies (pnpm prune --prod)"
      run_step "pruning the dev dependencies" pm prune --prod \
        "--config.store-dir=$CACHE/pnpm-store" --config.confirmModulesPurge=false
      ;;
    yarn)
      if pm_is_berry; then
        info "dev dependencies are kept (yarn $pm_version)"
      else
        step "Pruning dev dependencies (yarn install --production)"
        run_step "pruning the dev dependencies" pm install --production --frozen-lockfile \
          --non-interactive --offline --ignore-scripts --cache-folder "$CACHE/yarn"
      fi
      ;;
  esac
}

# The package manager goes into the slug, with a command of each of its names in
# node_modules/.bin (on PATH in instances, release phases and one-off runs): `yarn start` in a
# Procfile runs offline, from the read-only slug, without corepack.
pm_into_slug() {
  local home=.slipway/package-manager
  rm -rf "$home" && mkdir -p "$home" node_modules/.bin \
    && cp -a "$COREPACK_HOME/v1/$pm_name/$pm_version/." "$home/" \
    || fail "the package manager could not be copied into the slug"
  local name target
  while read -r name target; do
    [ -e "node_modules/.bin/$name" ] && continue  # the app's own dependency wins
    printf '%s\n' '#!/bin/sh' \
      "# $pm_name $pm_version, kept in the slug by the build (fetched through corepack)" \
      'app=$(dirname "$(dirname "$(dirname "$(readlink -f "$0")")")")' \
      "export YARN_ENABLE_TELEMETRY=0 YARN_IGNORE_PATH=1" \
      "exec node \"\$app/$home/$target\" \"\$@\"" >"node_modules/.bin/$name"
    chmod 755 "node_modules/.bin/$name"
  done < <(node -e '
    const meta = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const bin = Array.isArray(meta.bin)
      ? Object.fromEntries(meta.bin.map((name) => [name, `${meta.locator.name}.js`]))
      : meta.bin;
    for (const [name, target] of Object.entries(bin)) console.log(name, target.replace(/^\.\//, ""));
  ' "$home/.corepack")
  info "$pm_name $pm_version is in the slug (node_modules/.bin/$pm_name)"
}
