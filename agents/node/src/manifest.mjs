// What a worker checks before it runs new code (docs/RELEASES.md, "How a worker verifies a manifest"):
// an Ed25519 signature by a trusted key id over the canonical JSON of `signed`, this worker's channel,
// a sequence not lower than the highest accepted for that channel, an expiry not passed; then the
// offered target must be an entry of that manifest with the same SHA-256 and size.
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";

export class UpdateRefused extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "UpdateRefused";
    this.code = code;
  }
}

/** Canonical JSON: keys sorted, no spaces, non-ASCII escaped as \uXXXX (what the portal signs). */
export function canonicalJson(value) {
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((key) => canonicalJson(key) + ":" + canonicalJson(value[key])).join(",") + "}";
  }
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** {keyId: base64 raw public key} (what `manage.py signing_public_key --json` prints) -> KeyObjects.
 * A key id is the first 16 hex digits of the SHA-256 of the raw key: a mismatch is refused. */
export function trustedKeysFrom(pairs) {
  const keys = {};
  for (const [keyId, publicB64] of Object.entries(pairs)) {
    const raw = Buffer.from(publicB64, "base64");
    if (raw.length !== 32 || createHash("sha256").update(raw).digest("hex").slice(0, 16) !== keyId) {
      throw new Error(`trusted key ${keyId} does not match its public key`);
    }
    keys[keyId] = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  }
  return keys;
}

/** Checks channel manifests; remembers the highest sequence accepted per channel (in `statePath`). */
export class ManifestVerifier {
  constructor(trustedKeys, { statePath = null, now = () => new Date() } = {}) {
    this.trustedKeys = trustedKeys;
    this.statePath = statePath;
    this.now = now;
    this.sequences = {};
    if (statePath) {
      try {
        this.sequences = JSON.parse(readFileSync(statePath, "utf8"));
      } catch {
        this.sequences = {};
      }
    }
  }

  /** The manifest's `signed` part when every check passes; throws UpdateRefused otherwise. */
  verify(envelope, { channel } = {}) {
    const signed = envelope?.signed;
    if (!signed || typeof signed !== "object" || Array.isArray(signed)) {
      throw new UpdateRefused("manifest_invalid", "not a signed manifest");
    }
    if (!Array.isArray(envelope.signatures)) throw new UpdateRefused("manifest_invalid", "no signatures");
    const message = Buffer.from(canonicalJson(signed), "ascii");
    const known = envelope.signatures.filter((s) => s && typeof s === "object" && Object.hasOwn(this.trustedKeys, s.keyid));
    if (known.length === 0) throw new UpdateRefused("manifest_unknown_key", "signed by no key this worker trusts");
    const valid = known.some((s) => {
      try {
        return verify(null, message, this.trustedKeys[s.keyid], Buffer.from(String(s.sig), "base64"));
      } catch {
        return false;
      }
    });
    if (!valid) throw new UpdateRefused("manifest_bad_signature", "the signature does not match the manifest");
    if (typeof signed.channel !== "string" || (channel !== undefined && channel !== null && signed.channel !== channel)) {
      throw new UpdateRefused("manifest_wrong_channel", `manifest is for channel ${JSON.stringify(signed.channel)}`);
    }
    if (!Number.isInteger(signed.sequence)) throw new UpdateRefused("manifest_invalid", "sequence is missing");
    const highest = this.sequences[signed.channel] ?? 0;
    if (signed.sequence < highest) {
      throw new UpdateRefused("manifest_rollback", `sequence ${signed.sequence} is lower than ${highest} already seen`);
    }
    const expires = Date.parse(signed.expires_at);
    if (!(expires > this.now().getTime())) throw new UpdateRefused("manifest_expired", `expired at ${signed.expires_at}`);
    this.sequences[signed.channel] = signed.sequence;
    if (this.statePath) {
      writeFileSync(`${this.statePath}.tmp`, JSON.stringify(this.sequences));
      renameSync(`${this.statePath}.tmp`, this.statePath);
    }
    return signed;
  }
}

/** The manifest's entry naming the target (release, previous or a pinned one), or refuse. */
export function manifestEntryFor(signed, target) {
  const candidates = [signed.release, signed.previous, ...(Array.isArray(signed.pinned) ? signed.pinned : [])];
  for (const entry of candidates) {
    if (entry && typeof entry === "object" && entry.version === target?.version) {
      if (entry.sha256 !== target.sha256 || entry.size !== target.size) {
        throw new UpdateRefused("target_mismatch", "the target differs from what the manifest signs");
      }
      return entry;
    }
  }
  throw new UpdateRefused("target_not_in_manifest", `version ${JSON.stringify(target?.version)} is not in the manifest`);
}
