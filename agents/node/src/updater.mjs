// Download, verify, unpack: the part of an update before its self-test (docs/RELEASES.md, "The Node
// agent"). Layout under `root`: versions/<version>/ (one folder per install, kept), downloads/
// (partial and complete artifacts), sequences.json (highest manifest sequence per channel).
import { createHash } from "node:crypto";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import path from "node:path";

import { TransportError } from "./errors.mjs";
import { ManifestVerifier, UpdateRefused, manifestEntryFor } from "./manifest.mjs";
import { MANIFEST_NAME } from "./runtime.mjs";
import { UnsafeArchive, safeExtract } from "./tar.mjs";

export function sha256File(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

export class Updater {
  constructor(client, { root, trustedKeys, channel = null, downloadAttempts = 5, now } = {}) {
    this.client = client;
    this.root = root;
    this.channel = channel;
    this.downloadAttempts = downloadAttempts;
    mkdirSync(path.join(root, "versions"), { recursive: true });
    mkdirSync(path.join(root, "downloads"), { recursive: true });
    this.verifier = new ManifestVerifier(trustedKeys, { statePath: path.join(root, "sequences.json"), now });
  }

  versionDir(version) {
    return path.join(this.root, "versions", version);
  }

  /** Ask /updates/check and verify: {entry} to install, or {entry: null, reason}. Throws UpdateRefused. */
  async assigned(running) {
    const answer = await this.client.updateCheck(running);
    const signed = await this.#verifyForChannel(answer.manifest);
    if (!answer.target || typeof answer.target !== "object") return { entry: null, reason: String(answer.reason ?? "") };
    return { entry: manifestEntryFor(signed, answer.target), reason: String(answer.reason ?? "") };
  }

  async #verifyForChannel(manifest) {
    const channel = this.channel ?? await this.#channelFetch();
    try {
      return this.verifier.verify(manifest, { channel });
    } catch (error) {
      if (error.code !== "manifest_wrong_channel") throw error;
      // Staff may have moved this worker: the portal's config says which channel is ours now.
      const movedTo = await this.#channelFetch();
      if (movedTo === channel) throw error;
      return this.verifier.verify(manifest, { channel: movedTo });
    }
  }

  async #channelFetch() {
    const channel = (await this.client.config()).channel;
    if (typeof channel !== "string" || !channel) throw new UpdateRefused("manifest_wrong_channel", "the portal names no channel");
    this.channel = channel;
    return channel;
  }

  /** Fetch the artifact, resuming a partial file with Range; check its size and SHA-256. */
  async download(entry) {
    const { version, size, sha256 } = entry;
    const final = path.join(this.root, "downloads", `${version}-${String(sha256).slice(0, 16)}.artifact`);
    if (existsSync(final) && sha256File(final) === sha256) return final;
    const part = `${final}.part`;
    for (let attempt = 1; attempt <= this.downloadAttempts; attempt += 1) {
      let offset = existsSync(part) ? statSync(part).size : 0;
      if (offset > size) { unlinkSync(part); offset = 0; }
      if (offset >= size) break;
      const fd = openSync(part, offset ? "a" : "w");
      try {
        await this.client.download(String(entry.url), fd, { offset, onRestart: () => ftruncateSync(fd, 0) });
        break;
      } catch (error) {
        if (!(error instanceof TransportError) || attempt === this.downloadAttempts) throw error;
      } finally {
        closeSync(fd);
      }
    }
    if (!existsSync(part) || statSync(part).size !== size || sha256File(part) !== sha256) {
      rmSync(part, { force: true });
      throw new UpdateRefused("artifact_checksum", "the downloaded bytes do not match the manifest");
    }
    renameSync(part, final);
    return final;
  }

  /** Unpack into versions/<version>/ afresh; the folder's manifest must name that version. */
  unpack(artifact, version) {
    const folder = this.versionDir(version);
    rmSync(folder, { recursive: true, force: true });
    try {
      safeExtract(readFileSync(artifact), folder);
    } catch (error) {
      if (error instanceof UnsafeArchive) throw new UpdateRefused("artifact_unsafe", error.message);
      throw new UpdateRefused("artifact_corrupt", error.message);
    }
    return folder;
  }
}

/** The entrypoint the release's manifest names, inside its folder (or throw). */
export function releaseEntrypoint(folder) {
  const manifest = JSON.parse(readFileSync(path.join(folder, MANIFEST_NAME), "utf8"));
  const entry = path.resolve(folder, String(manifest.entrypoint));
  if (!entry.startsWith(path.resolve(folder) + path.sep)) throw new Error("the entrypoint lies outside the release folder");
  return { entry, manifest };
}
