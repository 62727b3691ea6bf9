// The manifest refusals of docs/RELEASES.md ("How a worker verifies a manifest"), and the download
// check: a tampered artifact, a tampered manifest, an unknown key, a lower sequence, an expired
// manifest, another channel's manifest.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { LeadOpsClient } from "../src/client.mjs";
import { ManifestVerifier, UpdateRefused, canonicalJson, manifestEntryFor, trustedKeysFrom } from "../src/manifest.mjs";
import { Updater } from "../src/updater.mjs";
import { json, manifestKey, serve, signedManifest } from "../test-support/helpers.mjs";

const key = manifestKey();
const trusted = () => trustedKeysFrom({ [key.keyId]: key.publicB64 });
const refusal = (fn) => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof UpdateRefused, error);
    return error.code;
  }
  return "accepted";
};

test("a manifest signed by a trusted key, of this channel, not expired, is accepted", () => {
  const signed = new ManifestVerifier(trusted()).verify(signedManifest(key), { channel: "stable" });
  assert.equal(signed.release.version, "2.0.0");
});

test("a tampered manifest is refused", () => {
  const envelope = signedManifest(key);
  envelope.signed.release.sha256 = "f".repeat(64);
  assert.equal(refusal(() => new ManifestVerifier(trusted()).verify(envelope, { channel: "stable" })), "manifest_bad_signature");
});

test("a manifest signed by an unknown key is refused, and a foreign signature under a trusted key id too", () => {
  const other = manifestKey();
  assert.equal(refusal(() => new ManifestVerifier(trusted()).verify(signedManifest(other))), "manifest_unknown_key");
  const forged = signedManifest(other);
  forged.signatures[0].keyid = key.keyId;
  assert.equal(refusal(() => new ManifestVerifier(trusted()).verify(forged)), "manifest_bad_signature");
});

test("a trusted key id must match its public key", () => {
  assert.throws(() => trustedKeysFrom({ "0123456789abcdef": key.publicB64 }), /does not match/);
});

test("a lower sequence than one accepted before is refused, also after a restart", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "seq-"));
  const statePath = path.join(dir, "sequences.json");
  new ManifestVerifier(trusted(), { statePath }).verify(signedManifest(key, { sequence: 7 }), { channel: "stable" });
  const restarted = new ManifestVerifier(trusted(), { statePath });
  assert.equal(refusal(() => restarted.verify(signedManifest(key, { sequence: 6 }), { channel: "stable" })), "manifest_rollback");
  assert.equal(restarted.verify(signedManifest(key, { sequence: 7 }), { channel: "stable" }).sequence, 7);
});

test("an expired manifest is refused", () => {
  const expired = signedManifest(key, { expires_at: "2000-01-01T00:00:00Z" });
  assert.equal(refusal(() => new ManifestVerifier(trusted()).verify(expired)), "manifest_expired");
  const later = () => new Date(Date.now() + 2 * 86400_000);
  assert.equal(refusal(() => new ManifestVerifier(trusted(), { now: later }).verify(signedManifest(key))), "manifest_expired");
});

test("another channel's manifest is refused", () => {
  const beta = signedManifest(key, { channel: "beta" });
  assert.equal(refusal(() => new ManifestVerifier(trusted()).verify(beta, { channel: "stable" })), "manifest_wrong_channel");
});

test("the offered target must be what the manifest signs", () => {
  const { signed } = signedManifest(key);
  assert.equal(manifestEntryFor(signed, { ...signed.release }).version, "2.0.0");
  assert.equal(refusal(() => manifestEntryFor(signed, { ...signed.release, sha256: "1".repeat(64) })), "target_mismatch");
  assert.equal(refusal(() => manifestEntryFor(signed, { ...signed.release, version: "9.9.9" })), "target_not_in_manifest");
});

test("canonical JSON escapes non-ASCII like the portal (Python json.dumps ensure_ascii)", () => {
  assert.equal(canonicalJson({ b: 1, a: ["é", "\u2028", null, "مرحبا"] }),
    '{"a":["\\u00e9","\\u2028",null,"\\u0645\\u0631\\u062d\\u0628\\u0627"],"b":1}');
});

test("a download resumes with Range and a tampered artifact is refused by its SHA-256", async () => {
  const artifact = Buffer.from("x".repeat(5000));
  const sha256 = createHash("sha256").update(artifact).digest("hex");
  let cut = true;
  const server = await serve((req, body, res) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const tampered = req.url.includes("tampered");
    const bytes = tampered ? Buffer.from("y".repeat(5000)) : artifact;
    res.writeHead(range ? 206 : 200, { "Content-Length": bytes.length - start });
    if (cut) {
      // The first answer stops half way: the next try must ask for the rest only.
      cut = false;
      res.write(bytes.subarray(start, 2000));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    res.end(bytes.subarray(start));
  });
  try {
    const root = mkdtempSync(path.join(tmpdir(), "dl-"));
    const client = new LeadOpsClient(server.url, { workerId: "w", keyId: "k", secret: "s" });
    const updater = new Updater(client, { root, trustedKeys: trusted() });
    const file = await updater.download({ version: "2.0.0", url: "/api/v1/releases/2.0.0/download", size: 5000, sha256 });
    assert.deepEqual(readFileSync(file), artifact);
    const ranges = server.requests.map((r) => r.headers.range ?? null);
    assert.deepEqual(ranges, [null, "bytes=2000-"]);
    assert.ok(server.requests.every((r) => r.headers.authorization?.startsWith("LEADOPS-HMAC-SHA256 Signature=")));
    await assert.rejects(updater.download({ version: "2.0.1", url: "/api/v1/releases/tampered/download", size: 5000, sha256 }),
      (error) => error.code === "artifact_checksum");
    assert.ok(!existsSync(path.join(root, "versions", "2.0.1")));
  } finally {
    await server.close();
  }
});
