// `npm run <script>` without starting npm (which costs about half a second before the script
// runs): the same library npm uses for lifecycle scripts, @npmcli/run-script, runs pre<script>,
// <script> and post<script> in order with npm's banner lines, inherited stdio and the
// environment npm gives scripts. Run in the app's directory; exits with the failing script's
// exit code.
//
//   node run-script.js build
"use strict";

const path = require("path");
const { npmRoot, scriptEnv } = require("./npm.js");

const runScriptMain = require.resolve("@npmcli/run-script");
const runScript = require(runScriptMain);
// npm's own reader (it normalizes the manifest and sets _id for the banner), found where
// run-script finds it.
const readPackage = require(
  require.resolve("read-package-json-fast", { paths: [path.dirname(runScriptMain)] })
);

const truthy = (value) => value === "true" || value === "1";

async function main(event) {
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

main(process.argv[2] || "build").then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`       ${error.message}`);
    process.exitCode = 1;
  }
);
