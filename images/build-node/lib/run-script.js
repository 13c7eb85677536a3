// `npm run <script>` without starting npm (which costs about half a second before the script
// runs): the same library npm uses for lifecycle scripts, @npmcli/run-script, runs pre<script>,
// <script> and post<script> in order with npm's banner lines, inherited stdio and the
// environment npm gives scripts. Run in the app's directory; exits with the failing script's
// exit code.
//
//   node run-script.js build
//   node run-script.js --after <file> build
//   node run-script.js --info <package.json> <out> --after <file> build
//
// With --info, it first writes what package-info.js prints to <out> (renamed into place whole),
// after a line "ok", or "error" and why (then it ends with exit code 1): the build learns about
// package.json without starting one more node process.
// With --after, it loads its libraries at once (Node.js and npm's modules take about 0.2 s to
// start), then waits until <file> exists: "go" in it runs the scripts, anything else ends the
// runner with nothing done. The build starts it while the source and node_modules are still
// being copied, so that start costs nothing.
"use strict";

const fs = require("fs");
const path = require("path");
const { npmRoot, scriptEnv } = require("./npm.js");
const { packageInfo } = require("./package-info.js");

// npm's libraries, loaded after --info is answered (the build waits for that answer).
function npmLibraries() {
  const runScriptMain = require.resolve("@npmcli/run-script");
  return {
    runScript: require(runScriptMain),
    // npm's own reader (it normalizes the manifest and sets _id for the banner), found where
    // run-script finds it.
    readPackage: require(
      require.resolve("read-package-json-fast", { paths: [path.dirname(runScriptMain)] })
    ),
  };
}

const truthy = (value) => value === "true" || value === "1";

const POLL_MS = 5;

// Block until `file` exists; its contents, trimmed. The writer renames it into place whole.
function waitFor(file) {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      return fs.readFileSync(file, "utf8").trim();
    } catch (error) {
      if (error.code !== "ENOENT") throw error;
    }
    Atomics.wait(nap, 0, 0, POLL_MS);
  }
}

function writeWhole(file, text) {
  fs.writeFileSync(`${file}.part`, text);
  fs.renameSync(`${file}.part`, file);
}

async function main(args) {
  let event = "build";
  if (args[0] === "--info") {
    const info = packageInfo(args[1]);
    writeWhole(args[2], `${info.ok ? "ok" : "error"}\n${info.text}`);
    if (!info.ok) return 1;
    args = args.slice(3);
  }
  const { runScript, readPackage } = npmLibraries();
  if (args[0] === "--after") {
    if (waitFor(args[1]) !== "go") return 0;
    args = args.slice(2);
  }
  event = args[0] || event;
  const appDir = process.cwd();
  const pkg = await readPackage(path.join(appDir, "package.json"));
  const scripts = pkg.scripts || {};
  if (!Object.prototype.hasOwnProperty.call(scripts, event)) {
    console.error(`package.json has no "${event}" script`);
    return 1;
  }
  // npm puts these in its own environment, which its scripts inherit (settings from .npmrc files
  // among them: script-shell and ignore-scripts count below).
  Object.assign(process.env, scriptEnv(npmRoot(), appDir));
  const events = [event];
  if (!truthy(process.env.npm_config_ignore_scripts)) {
    if (scripts[`pre${event}`]) events.unshift(`pre${event}`);
    if (scripts[`post${event}`]) events.push(`post${event}`);
  }
  const shell = process.env.npm_config_script_shell || undefined;
  for (const name of events) {
    try {
      await runScript({ event: name, path: appDir, pkg, stdio: "inherit", scriptShell: shell });
    } catch (error) {
      const code = Number.isInteger(error.code) && error.code > 0 ? error.code : 1;
      const why = error.signal ? `killed by ${error.signal}` : `exit code ${code}`;
      console.error(`       the ${name} script failed (${why}): ${scripts[name]}`);
      return code;
    }
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`       ${error.message}`);
    process.exitCode = 1;
  }
);
