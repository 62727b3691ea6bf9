#!/usr/bin/env node
// `npm run artifact -- --version X [--out DIR] [--source DIR] [--add FILE:DEST ...]`: a release artifact of this
// package for the portal (docs/RELEASES.md, "The Node agent"): a .tar.gz whose top level holds
// worker-manifest.json ({version, entrypoint, node}) beside bin/, src/, package.json and README.md
// (not under package/, as `npm pack` would put them). --source packs another copy of the package;
// --add puts one more file in. Prints {"path", "version", "sha256", "size"}.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { entriesFromFolder, tarGz } from "../src/tar.mjs";
import { MANIFEST_NAME, PACKAGE_ROOT } from "../src/runtime.mjs";

export const ENTRYPOINT = "bin/worker.mjs";

/** The artifact bytes of the package at `root` as `version`; `extra` adds [{name, data}] files. */
export function artifactBuild({ version, root = PACKAGE_ROOT, extra = [], node = process.versions.node }) {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$/.test(version ?? "")) throw new Error("--version must be like 1.2.3");
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  const manifest = { version, entrypoint: ENTRYPOINT, node, name: pkg.name, min_agent: "1" };
  const entries = [{ name: MANIFEST_NAME, data: JSON.stringify(manifest, null, 2) + "\n" }];
  for (const folder of ["bin", "src"]) {
    entries.push({ name: folder, type: "dir" }, ...entriesFromFolder(path.join(root, folder), folder));
  }
  for (const name of ["package.json", "README.md"]) entries.push({ name, data: readFileSync(path.join(root, name)) });
  entries.push(...extra);
  return tarGz(entries);
}

function main(argv) {
  let version;
  let out = path.join(PACKAGE_ROOT, "dist");
  let root = PACKAGE_ROOT;
  const extra = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--version") version = value;
    else if (flag === "--out") out = path.resolve(value);
    else if (flag === "--source") root = path.resolve(value);
    else if (flag === "--add") {
      const at = value.lastIndexOf(":");
      extra.push({ name: value.slice(at + 1), data: readFileSync(value.slice(0, at)) });
    } else throw new Error(`unknown option ${flag}`);
  }
  version ??= process.env.npm_config_version ?? JSON.parse(readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")).version;
  const bytes = artifactBuild({ version, root, extra });
  mkdirSync(out, { recursive: true });
  const file = path.join(out, `leadops-node-worker-${version}.tar.gz`);
  writeFileSync(file, bytes);
  console.log(JSON.stringify({ path: file, version, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(`artifact: error: ${error.message}`);
    process.exit(2);
  }
}
