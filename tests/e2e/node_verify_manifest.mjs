#!/usr/bin/env node
// Verifies a LeadOps channel manifest the way a Node worker must (docs/RELEASES.md), with nothing
// but node:crypto: it runs the verifyManifest snippet docs/RELEASES.md shows, read from the docs.
//
//   node tests/e2e/node_verify_manifest.mjs --manifest FILE --trust KEYID:BASE64 [--trust ...]
//        [--channel C] [--min-sequence N] [--now ISO-8601]
//
// Prints one JSON line: {"ok": true, "sequence": N, "version": V} (exit 0) or
// {"ok": false, "code": "..."} (exit 1).
import { readFileSync } from "node:fs";

// The snippet docs/RELEASES.md shows (its ```js block that exports verifyManifest), run as written:
// CI checks the documentation's own code, not a copy of it.
const docs = readFileSync(new URL("../../docs/RELEASES.md", import.meta.url), "utf8");
const snippet = docs.split("```js\n").slice(1).map((block) => block.split("\n```")[0])
  .find((block) => block.includes("export function verifyManifest"));
const { verifyManifest } = await import(`data:text/javascript;base64,${Buffer.from(snippet).toString("base64")}`);

function main(argv) {
  const trusted = {};
  const options = {};
  let file;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--manifest") file = value;
    else if (flag === "--trust") {
      const [keyId, publicKey] = value.split(":");
      trusted[keyId] = publicKey;
    } else if (flag === "--channel") options.channel = value;
    else if (flag === "--min-sequence") options.lastSequence = Number(value);
    else if (flag === "--now") options.now = new Date(value);
    else throw new Error(`unknown option ${flag}`);
  }
  const result = verifyManifest(JSON.parse(readFileSync(file, "utf8")), trusted, options);
  if (result.ok) {
    const version = result.signed.release ? result.signed.release.version : null;
    console.log(JSON.stringify({ ok: true, sequence: result.signed.sequence, version }));
    return 0;
  }
  console.log(JSON.stringify(result));
  return 1;
}

try {
  process.exit(main(process.argv.slice(2)));
} catch (error) {
  console.log(JSON.stringify({ ok: false, code: "usage", message: String(error.message) }));
  process.exit(2);
}
