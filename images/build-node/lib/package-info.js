// Everything `build` needs to know before installing, in one node process (each `node` started
// costs a tenth of a second or more, `npm` half a second).
//
//   node package-info.js path/to/package.json
//
// Prints eight lines: the Node.js version, npm's version, engines.node (empty when absent),
// "build" when package.json has a build script (else empty), why the build cannot go on (empty
// when it can), and the package manager's name, version (or major) and why it was chosen (see
// package-manager.js). A package.json that is not a JSON object prints why and exits 1.
// run-script.js --info gives the same, from the process that runs the build scripts later.
"use strict";

const fs = require("fs");
const path = require("path");
const { npmRoot, npmVersion } = require("./npm.js");
const packageManager = require("./package-manager.js");

function readPackage(file) {
  let pkg;
  try {
    pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`package.json is not valid JSON (${oneLine(error.message)})`);
  }
  if (pkg === null || typeof pkg !== "object" || Array.isArray(pkg)) {
    throw new Error("package.json does not hold a JSON object");
  }
  return pkg;
}

function oneLine(text) {
  return String(text).replace(/\s+/g, " ").trim();
}

// npm's semver, the two functions only (loading all of it costs another 10 ms).
function satisfies(wanted) {
  const validRange = require("semver/ranges/valid");
  const range = validRange(wanted);
  return Boolean(range) && require("semver/functions/satisfies")(process.version, range);
}

// { ok, text }: the eight lines, or why package.json cannot be read.
function packageInfo(file) {
  let pkg;
  try {
    pkg = readPackage(file);
  } catch (error) {
    return { ok: false, text: `${error.message}\n` };
  }
  const have = process.version.replace(/^v/, "");
  let npm = "(not found)";
  try {
    npm = npmVersion(npmRoot());
  } catch {
    // npm ci says so, with a clearer reason, if it comes to that
  }
  const engines = pkg.engines && typeof pkg.engines === "object" ? pkg.engines : {};
  const wanted = engines.node == null ? "" : oneLine(engines.node);
  const scripts = pkg.scripts && typeof pkg.scripts === "object" ? pkg.scripts : {};
  const build = typeof scripts.build === "string" && scripts.build.trim() ? "build" : "";
  const manager = packageManager.choose(pkg, packageManager.lockfiles(path.dirname(file)));
  const problem =
    wanted && !satisfies(wanted)
      ? `package.json asks for Node.js ${wanted} (engines.node) but this image has Node.js ${have}`
      : manager instanceof Error
        ? manager.message
        : "";
  const chosen = manager instanceof Error ? ["", "", ""] : [
    manager.name, manager.version + manager.hash, manager.reason,
  ];
  const lines = [have, npm, wanted, build, problem, ...chosen];
  return { ok: true, text: lines.map(oneLine).join("\n") + "\n" };
}

module.exports = { packageInfo };

if (require.main === module) {
  const info = packageInfo(process.argv[2] || "package.json");
  process.stdout.write(info.text);
  process.exitCode = info.ok ? 0 : 1;
}
