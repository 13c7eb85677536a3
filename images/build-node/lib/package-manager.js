// Which package manager installs an app, and why:
//
//   1. `packageManager` in package.json (`pnpm@9.12.0`, `yarn@4.5.0+sha512.…`), as corepack reads it;
//   2. else pnpm-lock.yaml: pnpm, the major that writes its lockfileVersion;
//   3. else yarn.lock: Yarn 1 (classic), or Yarn 4 when it is a Berry lock (its `__metadata:`
//      header; Yarn 3 for the older Berry lock versions);
//   4. else npm (package-lock.json or npm-shrinkwrap.json: npm ci).
//
// A range here ("9", "1", "4") is the newest release of that major; the build resolves it.
//
//   node package-manager.js <app dir>     prints: name, version or range, reason (three lines)
"use strict";

const fs = require("fs");
const path = require("path");

const HEAD_BYTES = 4096; // a lockfile's header says all we read

// pnpm-lock.yaml's lockfileVersion → the pnpm major that reads and writes it unchanged.
const PNPM_FOR_LOCKFILE = [
  [9, "9"], // 9.0: pnpm 9 (pnpm 10 keeps it: ask for it with packageManager)
  [6, "8"],
  [5.4, "7"],
  [5.3, "6"],
  [0, "5"],
];

function head(file) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buffer = Buffer.alloc(HEAD_BYTES);
    return buffer.toString("utf8", 0, fs.readSync(fd, buffer, 0, HEAD_BYTES, 0));
  } finally {
    fs.closeSync(fd);
  }
}

// What of the app's files the choice looks at: package.json's `packageManager` and the heads of
// the lockfiles (null when absent).
function lockfiles(dir) {
  return {
    pnpm: head(path.join(dir, "pnpm-lock.yaml")),
    yarn: head(path.join(dir, "yarn.lock")),
    npm: ["npm-shrinkwrap.json", "package-lock.json"].find(
      (name) => head(path.join(dir, name)) !== null
    ),
  };
}

// `name@version[+hash]` as corepack accepts it; an Error saying what is wrong otherwise.
function parsePackageManager(value) {
  if (typeof value !== "string") {
    return new Error('packageManager in package.json must be a string, like "pnpm@9.12.0"');
  }
  const match = /^(npm|pnpm|yarn)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(\+[a-z0-9]+\.[0-9a-f]+)?$/.exec(
    value.trim()
  );
  if (!match) {
    return new Error(
      `packageManager ${JSON.stringify(value)} in package.json is not npm, pnpm or yarn ` +
        'with an exact version (like "pnpm@9.12.0" or "yarn@4.5.0")'
    );
  }
  return { name: match[1], version: match[2], hash: match[3] || "" };
}

function pnpmForLockfile(text) {
  const match = /^lockfileVersion:\s*['"]?(\d+(?:\.\d+)?)/m.exec(text);
  const version = match ? Number(match[1]) : null;
  const major = version === null ? "9" : PNPM_FOR_LOCKFILE.find(([at]) => version >= at)[1];
  return { version: major, why: match ? `lockfileVersion ${match[1]}` : "no lockfileVersion" };
}

function yarnForLockfile(text) {
  if (!/^__metadata:/m.test(text)) return { version: "1", why: "a Yarn 1 lock" };
  const match = /^__metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+version:\s*(\d+)/m.exec(text);
  const metadata = match ? Number(match[1]) : 8;
  const major = metadata >= 8 ? "4" : metadata >= 6 ? "3" : "2";
  return { version: major, why: `a Yarn Berry lock, __metadata version ${metadata}` };
}

// { name, version (exact, or a major to resolve), hash, reason } or an Error.
function choose(pkg, locks) {
  if (pkg.packageManager !== undefined) {
    const wanted = parsePackageManager(pkg.packageManager);
    if (wanted instanceof Error) return wanted;
    return { ...wanted, reason: `packageManager ${wanted.name}@${wanted.version} in package.json` };
  }
  if (locks.pnpm !== null) {
    const { version, why } = pnpmForLockfile(locks.pnpm);
    return { name: "pnpm", version, hash: "", reason: `pnpm-lock.yaml, ${why}` };
  }
  if (locks.yarn !== null) {
    const { version, why } = yarnForLockfile(locks.yarn);
    return { name: "yarn", version, hash: "", reason: `yarn.lock, ${why}` };
  }
  return { name: "npm", version: "", hash: "", reason: locks.npm || "no lockfile" };
}

module.exports = { choose, lockfiles, parsePackageManager };

if (require.main === module) {
  const dir = process.argv[2] || ".";
  let pkg;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  } catch (error) {
    process.stdout.write(`error\npackage.json could not be read: ${error.message}\n`);
    process.exit(1);
  }
  const chosen = choose(pkg, lockfiles(dir));
  if (chosen instanceof Error) {
    process.stdout.write(`error\n${chosen.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${chosen.name}\n${chosen.version}${chosen.hash}\n${chosen.reason}\n`);
}
