// What npm would say about itself, read from its files on disk: starting npm just to ask costs
// about half a second. Shared by package-info.js and run-script.js.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

// npm's package directory: the real path of the `npm` on PATH is <dir>/bin/npm-cli.js.
function npmRoot() {
  for (const dir of (process.env.PATH || "").split(path.delimiter)) {
    if (!dir) continue;
    try {
      return path.dirname(path.dirname(fs.realpathSync(path.join(dir, "npm"))));
    } catch {
      // not in this directory
    }
  }
  throw new Error("npm is not on PATH");
}

function npmVersion(root) {
  return JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).version;
}

// ${VAR} in npmrc keys and values, by npm's rule (@npmcli/config's env-replace.js): an unset
// variable stays as written, a backslash escapes.
function envReplace(text, env) {
  return text.replace(/(?<!\\)(\\*)\$\{([^${}]+)\}/g, (whole, escapes, name) => {
    const value = env[name] !== undefined ? env[name] : `\${${name}}`;
    if (escapes.length % 2) return whole.slice((escapes.length + 1) / 2);
    return escapes.slice(escapes.length / 2) + value;
  });
}

// An npmrc file's settings as environment values (arrays joined as npm joins them), read with
// the ini parser npm uses. Sections hold no settings npm exports.
function readNpmrc(file, env) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return {};
  }
  const values = {};
  for (const [key, value] of Object.entries(require("ini").parse(text))) {
    const exported = Array.isArray(value) ? value.map(String).join("\n\n") : value;
    if (typeof exported === "string") values[envReplace(key, env)] = envReplace(exported, env);
    else if (exported === true) values[envReplace(key, env)] = "true";
  }
  return values;
}

function ciName(env) {
  if (env.npm_config_ci_name) return env.npm_config_ci_name;
  try {
    const { name } = require("ci-info");
    return name ? name.toLowerCase().split(" ").join("-") : "";
  } catch {
    return "";
  }
}

// The variables npm 9 adds for `npm run-script` on top of what @npmcli/run-script sets (PATH,
// npm_lifecycle_*, npm_package_*, npm_config_node_gyp): see @npmcli/config's set-envs.js and
// npm.js. Config files' keys are exported unless the environment sets them already (npm only
// exports keys that differ from its defaults; exporting a default value as well changes nothing).
function scriptEnv(root, appDir, env = process.env) {
  const version = npmVersion(root);
  const home = env.HOME || os.homedir();
  const builtin = readNpmrc(path.join(root, "npmrc"), env);
  const prefix =
    env.npm_config_prefix || builtin.prefix || path.dirname(path.dirname(process.execPath));
  const userconfig = env.npm_config_userconfig || path.join(home, ".npmrc");
  const globalconfig =
    env.npm_config_globalconfig || builtin.globalconfig || path.join(prefix, "etc", "npmrc");
  const files = {
    ...builtin,
    ...readNpmrc(globalconfig, env),
    ...readNpmrc(userconfig, env),
    ...readNpmrc(path.join(appDir, ".npmrc"), env),
  };
  Object.assign(files, {
    userconfig,
    "init-module": path.join(home, ".npm-init.js"),
    "metrics-registry":
      env.npm_config_registry || files.registry || "https://registry.npmjs.org/",
    noproxy: env.NO_PROXY || env.no_proxy || "",
  });
  const out = {};
  for (const [key, value] of Object.entries(files)) {
    const name = `npm_config_${key.replace(/-/g, "_").toLowerCase()}`;
    if (!/^[/@_]/.test(key) && !(name in env)) out[name] = value;
  }
  const setting = (key) => env[`npm_config_${key.replace(/-/g, "_")}`] || files[key];
  const template =
    setting("user-agent") ||
    "npm/{npm-version} node/{node-version} {platform} {arch} workspaces/{workspaces} {ci}";
  const ci = ciName(env);
  const noColor = env.NO_COLOR && env.NO_COLOR !== "0";
  const color = setting("color") || (noColor ? "false" : "true");
  return {
    ...out,
    INIT_CWD: appDir,
    HOME: home,
    npm_config_global_prefix: prefix,
    npm_config_local_prefix: appDir,
    npm_config_user_agent: template
      .replace(/\{node-version\}/gi, process.version)
      .replace(/\{npm-version\}/gi, version)
      .replace(/\{platform\}/gi, process.platform)
      .replace(/\{arch\}/gi, process.arch)
      .replace(/\{workspaces\}/gi, "false")
      .replace(/\{ci\}/gi, ci ? `ci/${ci}` : "")
      .trim(),
    npm_command: "run-script",
    npm_execpath: path.join(root, "bin", "npm-cli.js"),
    NODE: process.execPath,
    npm_node_execpath: process.execPath,
    EDITOR: setting("editor") || env.EDITOR || env.VISUAL || "vi",
    COLOR: color === "always" || (color === "true" && process.stdout.isTTY) ? "1" : "0",
  };
}

module.exports = { npmRoot, npmVersion, scriptEnv };
