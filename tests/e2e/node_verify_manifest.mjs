#!/usr/bin/env node
// Verifies a LeadOps channel manifest the way a Node worker must (docs/RELEASES.md), with nothing
// but node:crypto. The function between the BEGIN/END lines is the snippet docs/RELEASES.md shows;
// tests/e2e/test_node_manifest_verify.py checks that both stay the same.
//
//   node tests/e2e/node_verify_manifest.mjs --manifest FILE --trust KEYID:BASE64 [--trust ...]
//        [--channel C] [--min-sequence N] [--now ISO-8601]
//
// Prints one JSON line: {"ok": true, "sequence": N, "version": V} (exit 0) or
// {"ok": false, "code": "..."} (exit 1).
import { readFileSync } from "node:fs";

// BEGIN verifyManifest
import { createPublicKey, verify } from "node:crypto";

// Canonical JSON: keys sorted, no spaces, non-ASCII escaped as \uXXXX (what the portal signs).
function canonicalJson(value) {
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((key) => canonicalJson(key) + ":" + canonicalJson(value[key])).join(",") + "}";
  }
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

// trustedKeys: {keyId: base64 raw Ed25519 public key}, from `manage.py signing_public_key --json`.
// lastSequence: the highest sequence this worker accepted for the channel (persist it!).
export function verifyManifest(envelope, trustedKeys, { channel, lastSequence = 0, now = new Date() } = {}) {
  const signed = envelope && envelope.signed;
  if (!signed || typeof signed !== "object" || !Array.isArray(envelope.signatures)) {
    return { ok: false, code: "manifest_invalid" };
  }
  const message = Buffer.from(canonicalJson(signed), "ascii");
  const known = envelope.signatures.filter((s) => s && Object.hasOwn(trustedKeys, s.keyid));
  if (known.length === 0) return { ok: false, code: "manifest_unknown_key" };
  const valid = known.some((s) => {
    const raw = Buffer.from(trustedKeys[s.keyid], "base64");
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
                                  format: "jwk" });
    try {
      return verify(null, message, key, Buffer.from(String(s.sig), "base64"));
    } catch {
      return false;
    }
  });
  if (!valid) return { ok: false, code: "manifest_bad_signature" };
  if (channel !== undefined && signed.channel !== channel) return { ok: false, code: "manifest_wrong_channel" };
  if (!Number.isInteger(signed.sequence)) return { ok: false, code: "manifest_invalid" };
  if (signed.sequence < lastSequence) return { ok: false, code: "manifest_rollback" };
  if (!(Date.parse(signed.expires_at) > now.getTime())) return { ok: false, code: "manifest_expired" };
  return { ok: true, signed };
}
// END verifyManifest

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
