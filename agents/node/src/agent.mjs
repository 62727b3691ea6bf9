// The supervising agent (docs/RELEASES.md, "The Node agent"): the same behaviour as the Python
// reference agent. It runs the entrypoint of the version it installed (versions/<version>/) as a child
// process with this Node, hears the child's heartbeats on a pipe (fd 3), and when a heartbeat's
// `update_target` names another version (or on the fallback interval) it asks /updates/check,
// verifies the signed channel manifest, downloads with Range resume, checks the SHA-256, unpacks
// safely, self-tests by launching the new version with --self-test, and switches: the old child stops
// (it reports or releases its leases) before the new one starts. A version that crashes more than
// `crashLimit` times within `crashWindowS` after its switch is replaced by the last good version,
// reported `rolled_back` with the reason and quarantined. Every stage goes to /updates/report.
// Its state is `agent.json` in the install folder, written atomically.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";

import { AGENT_FD_ENV, AGENT_RUNNING_VERSION_ENV, AGENT_SELF_TEST_ENV, credentialsRead } from "./runtime.mjs";
import { Updater, releaseEntrypoint } from "./updater.mjs";

export const AGENT_VERSION = "1";
export const STATE_NAME = "agent.json";
const MAX_RESTART_BACKOFF_S = 30;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class AgentState {
  constructor(raw = {}) {
    this.running = typeof raw.running === "string" ? raw.running : null;
    this.last_good = typeof raw.last_good === "string" ? raw.last_good : null;
    this.switched_at = typeof raw.switched_at === "number" ? raw.switched_at : null;
    this.crashes = Array.isArray(raw.crashes) ? raw.crashes.filter((t) => typeof t === "number") : [];
    this.self_tests = raw.self_tests && typeof raw.self_tests === "object" ? raw.self_tests : {};
    this.quarantine = raw.quarantine && typeof raw.quarantine === "object" ? raw.quarantine : {};
    this.unpacked = raw.unpacked && typeof raw.unpacked === "object" ? raw.unpacked : {};
  }

  static load(file) {
    try {
      return new AgentState(JSON.parse(readFileSync(file, "utf8")));
    } catch {
      return new AgentState();
    }
  }

  save(file) {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(this, null, 1));
    renameSync(temp, file);
  }

  /** More than `limit` crashes within `windowS` seconds after the switch. */
  crashLoop(limit, windowS) {
    if (this.switched_at === null) return false;
    return this.crashes.filter((t) => t - this.switched_at <= windowS).length > limit;
  }
}

export class Agent {
  /**
   * @param {LeadOpsClient} client the agent's own client (update check, reports, release)
   * @param {object} options root, trustedKeys, credentialsFile, workerArgs, crashLimit, crashWindowS,
   *   stopTimeoutS, selfTestTimeoutS, quarantineS, checkIntervalS, node (executable), log
   */
  constructor(client, options) {
    this.client = client;
    this.root = options.root;
    this.credentialsFile = options.credentialsFile;
    this.workerArgs = options.workerArgs ?? [];
    this.settings = {
      crashLimit: options.crashLimit ?? 3, crashWindowS: options.crashWindowS ?? 120,
      stopTimeoutS: options.stopTimeoutS ?? 60, selfTestTimeoutS: options.selfTestTimeoutS ?? 60,
      quarantineS: options.quarantineS ?? 3600, checkIntervalS: options.checkIntervalS ?? null,
    };
    this.node = options.node ?? process.execPath;
    this.log = options.log ?? (() => {});
    this.statePath = path.join(this.root, STATE_NAME);
    this.state = AgentState.load(this.statePath);
    this.updater = new Updater(client, { root: this.root, trustedKeys: options.trustedKeys });
    this.child = null;
    this.stopped = false;
    this.checkIntervalS = this.settings.checkIntervalS ?? 300;
    this.nextCheckAt = 0;
    this.targetChecked = null;
    this.checking = null;
    this.reports = Promise.resolve();
    this.wakeUp = null;
  }

  stop() {
    this.stopped = true;
    this.wakeUp?.();
  }

  #wake() {
    this.wakeUp?.();
  }

  #save() {
    this.state.save(this.statePath);
  }

  /** Stage reports go out in order, on their own chain: a switch never waits for them. */
  report(version, stage, ok, details = {}) {
    this.log("info", `update ${version} ${stage} ${ok ? "ok" : "failed"} ${JSON.stringify(details)}`);
    this.reports = this.reports.then(async () => {
      this.#credentialsRefresh();
      try {
        await this.client.updateReport(version, stage, ok, details);
      } catch (error) {
        this.log("warn", `update report ${version}/${stage} not delivered: ${error.message}`);
      }
    });
  }

  async run() {
    await this.#configRefresh();
    const running = this.state.running;
    if (running && existsSync(this.updater.versionDir(running))) this.#childStart(running);
    else this.state.running = null;
    while (!this.stopped) {
      try {
        await this.#step();
      } catch (error) {
        // The agent is what brings a broken machine back: nothing may end its loop.
        this.log("error", `agent step failed: ${error.stack ?? error}`);
        await sleep(1000);
      }
    }
    if (this.child) await this.#childStop(this.child);
    await this.reports;
  }

  async #step() {
    const now = Date.now();
    if (this.restartAt && now >= this.restartAt && this.state.running && !this.child) {
      this.restartAt = null;
      this.#childStart(this.state.running);
    }
    this.#probationCheck();
    if (now >= this.nextCheckAt || this.checkNow) {
      this.checkNow = false;
      const bootstrap = !this.state.running;
      this.nextCheckAt = Date.now() + (bootstrap ? 2000 : this.checkIntervalS * 1000);
      await this.#check();
    }
    const waitMs = Math.max(0, Math.min(500, this.nextCheckAt - Date.now()));
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      this.wakeUp = () => { clearTimeout(timer); resolve(); };
    });
    this.wakeUp = null;
  }

  // --- update ----------------------------------------------------------------------------------

  async #check() {
    this.#credentialsRefresh();
    let entry;
    try {
      ({ entry } = await this.updater.assigned(this.state.running ?? "none"));
    } catch (error) {
      this.log("warn", `update check refused or failed: ${error.code ?? ""} ${error.message}`);
      return;
    }
    if (!entry || entry.version === this.state.running) return;
    const version = String(entry.version);
    const quarantined = this.#quarantined(version);
    if (quarantined && quarantined.sha256 === entry.sha256) {
      this.log("info", `${version} is quarantined here (${quarantined.reason}); staying on ${this.state.running}`);
      return;
    }
    const kept = existsSync(this.updater.versionDir(version)) && this.state.unpacked[version] === entry.sha256;
    if (!kept) {
      let artifact;
      try {
        artifact = await this.updater.download(entry);
      } catch (error) {
        if (error.name === "UpdateRefused") this.report(version, "downloaded", false, { error: error.code });
        else this.log("warn", `download of ${version} failed: ${error.message}`);
        return;
      }
      this.report(version, "downloaded", true, { sha256: entry.sha256 });
      try {
        delete this.state.unpacked[version];
        this.updater.unpack(artifact, version);
      } catch (error) {
        this.report(version, "installed", false, { error: error.code ?? "artifact_corrupt" });
        return;
      }
      this.state.unpacked[version] = entry.sha256;
      this.#save();
      this.report(version, "installed", true, {});
    } else {
      this.report(version, "downloaded", true, { sha256: entry.sha256, kept: true });
      this.report(version, "installed", true, { kept: true });
    }
    const { ok, details } = await this.#selfTest(version);
    this.report(version, "self_test", ok, details);
    if (!ok) {
      this.report(version, "rolled_back", true, { to_version: this.state.running, ...details });
      this.#quarantine(version, entry.sha256, `self-test failed: ${details.error ?? `exit ${details.exit_code}`}`);
      return;
    }
    await this.#switch(version);
  }

  async #selfTest(version) {
    const folder = this.updater.versionDir(version);
    let entry;
    let manifest;
    try {
      ({ entry, manifest } = releaseEntrypoint(folder));
    } catch (error) {
      return { ok: false, details: { error: `entrypoint: ${error.message}` } };
    }
    if (manifest.version !== version) return { ok: false, details: { error: "version mismatch" } };
    if (/^\d+$/.test(String(manifest.min_agent ?? "")) && Number(manifest.min_agent) > Number(AGENT_VERSION)) {
      return { ok: false, details: { error: `needs agent ${manifest.min_agent}, this agent is ${AGENT_VERSION}` } };
    }
    const known = this.state.self_tests[version];
    if (version === this.state.last_good && known?.ok) {
      // It ran well here before, from this very folder: no launch needed.
      return { ok: true, details: { mode: known.mode, kept: true } };
    }
    const started = Date.now();
    const env = { ...process.env, [AGENT_RUNNING_VERSION_ENV]: this.state.running ?? version };
    delete env[AGENT_FD_ENV];
    delete env[AGENT_SELF_TEST_ENV];
    const result = await new Promise((resolve) => {
      const child = spawn(this.node, [entry, "--self-test", ...this.#childArgs()],
        { cwd: folder, env, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d) => { output = (output + d).slice(-2000); });
      child.stderr.on("data", (d) => { output = (output + d).slice(-2000); });
      const timer = setTimeout(() => { child.kill("SIGKILL"); }, this.settings.selfTestTimeoutS * 1000);
      child.on("error", (error) => { clearTimeout(timer); resolve({ error: error.message, output }); });
      child.on("exit", (code, signal) => { clearTimeout(timer); resolve({ code, signal, output }); });
    });
    const ok = result.code === 0;
    const details = { mode: "launch", exit_code: result.code ?? null, seconds: Math.round((Date.now() - started) / 10) / 100,
                      node: process.version };
    if (result.signal) details.error = `killed by ${result.signal} (timeout ${this.settings.selfTestTimeoutS} s)`;
    if (result.error) details.error = result.error;
    if (!ok) details.output = result.output.slice(-500);
    this.state.self_tests[version] = { version, ok, ...details };
    this.#save();
    return { ok, details };
  }

  async #switch(version) {
    const old = this.child;
    if (old && old.heartbeats && !this.#crashLooping()) this.state.last_good = old.version;
    if (old) await this.#childStop(old);
    this.state.running = version;
    this.state.switched_at = Date.now() / 1000;
    this.state.crashes = [];
    this.restartAt = null;
    this.#save();
    this.#childStart(version);
    this.log("info", `switched to ${version}`);
  }

  #crashLooping() {
    return this.state.crashLoop(this.settings.crashLimit, this.settings.crashWindowS);
  }

  async #crashed(child, code) {
    this.log("warn", `version ${child.version} exited with ${code}`);
    this.child = null;
    await this.#leasesRelease();
    this.state.crashes.push(Date.now() / 1000);
    this.#save();
    const good = this.state.last_good;
    if (this.#crashLooping() && good && good !== child.version && existsSync(this.updater.versionDir(good))) {
      const crashes = this.state.crashes.length;
      const reason = `crash loop: exited ${crashes} times within ${this.settings.crashWindowS} s after the switch (last exit code ${code})`;
      this.log("error", `rolling back from ${child.version} to ${good}: ${reason}`);
      this.#quarantine(child.version, this.state.unpacked[child.version] ?? null, reason);
      this.report(child.version, "rolled_back", true, { to_version: good, reason, crashes, exit_code: code });
      this.state.running = good;
      this.state.switched_at = Date.now() / 1000;
      this.state.crashes = [];
      this.#save();
      this.targetChecked = null;
      this.#childStart(good);
      return;
    }
    const attempt = this.state.crashes.length;
    this.restartAt = Date.now() + Math.min(MAX_RESTART_BACKOFF_S, 0.25 * 2 ** (attempt - 1)) * 1000;
    this.#wake();
  }

  #probationCheck() {
    const { child, state } = this;
    if (!child || !child.heartbeats || state.switched_at === null || state.running === state.last_good) return;
    if (Date.now() / 1000 - state.switched_at >= this.settings.crashWindowS && !this.#crashLooping()) {
      state.last_good = state.running;
      this.#save();
    }
  }

  #quarantine(version, sha256, reason) {
    this.state.quarantine[version] = { sha256, reason, at: Date.now() / 1000 };
    this.#save();
  }

  #quarantined(version) {
    const entry = this.state.quarantine[version];
    if (!entry || Date.now() / 1000 - Number(entry.at ?? 0) > this.settings.quarantineS) return null;
    return entry;
  }

  // --- child processes -------------------------------------------------------------------------

  #childArgs() {
    return ["--url", this.client.baseUrl, "--credentials-file", this.credentialsFile, ...this.workerArgs];
  }

  #childStart(version) {
    const folder = this.updater.versionDir(version);
    const { entry } = releaseEntrypoint(folder);
    const env = { ...process.env, [AGENT_FD_ENV]: "3" };
    delete env[AGENT_RUNNING_VERSION_ENV];
    const selfTest = this.state.self_tests[version];
    if (selfTest) env[AGENT_SELF_TEST_ENV] = JSON.stringify(selfTest);
    else delete env[AGENT_SELF_TEST_ENV];
    const process_ = spawn(this.node, [entry, ...this.#childArgs()],
      { cwd: folder, env, stdio: ["ignore", "inherit", "inherit", "pipe"] });
    const child = { version, process: process_, heartbeats: 0, stopRequested: false, stoppedEvent: false };
    child.exited = new Promise((resolve) => process_.on("exit", (code, signal) => resolve(code ?? signal)));
    child.stopped = new Promise((resolve) => { child.markStopped = resolve; });
    createInterface({ input: process_.stdio[3] }).on("line", (line) => this.#message(child, line));
    child.exited.then((code) => {
      child.markStopped();
      if (child === this.child && !child.stopRequested && !this.stopped) {
        this.#crashed(child, code).catch((error) => this.log("error", `after a crash: ${error.stack ?? error}`));
      }
    });
    this.child = child;
    this.log("info", `started ${version} (pid ${process_.pid})`);
  }

  #message(child, line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message?.event === "stopped") child.markStopped();
    if (message?.event !== "heartbeat" || child !== this.child) return;
    child.heartbeats += 1;
    const target = message.update_target;
    if (target && typeof target === "object" && target.version !== this.state.running) {
      const key = `${target.version}@${target.sequence}`;
      if (key !== this.targetChecked) {
        // A target tried (and refused) is asked for again on the interval, or at once when it changes.
        this.targetChecked = key;
        this.checkNow = true;
        this.#wake();
      }
    }
  }

  /** SIGTERM: the child stops taking work, reports or releases its leases, says "stopped" and exits. */
  async #childStop(child) {
    child.stopRequested = true;
    if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill("SIGTERM");
    const timeout = sleep(this.settings.stopTimeoutS * 1000).then(() => "timeout");
    if (await Promise.race([child.stopped, timeout]) === "timeout") {
      this.log("error", `version ${child.version} did not stop within ${this.settings.stopTimeoutS} s; killing it`);
      child.process.kill("SIGKILL");
      await child.exited;
      await this.#leasesRelease();
    }
    if (this.child === child) this.child = null;
  }

  async #leasesRelease() {
    this.#credentialsRefresh();
    try {
      const answer = await this.client.release();
      if (answer.released) this.log("info", `released ${answer.released} leases`);
    } catch (error) {
      this.log("warn", `could not release the leases: ${error.message}`);
    }
  }

  // --- portal and files ------------------------------------------------------------------------

  async #configRefresh() {
    try {
      const config = await this.client.config();
      if (typeof config.channel === "string" && config.channel) this.updater.channel = config.channel;
      const interval = config.update_check_interval_s;
      if (this.settings.checkIntervalS === null && typeof interval === "number" && interval > 0) this.checkIntervalS = interval;
    } catch (error) {
      this.log("warn", `GET /config failed: ${error.message}`);
    }
  }

  /** Sign with the key the child stored last (a key pushed to it by a heartbeat). */
  #credentialsRefresh() {
    try {
      const mtime = statSync(this.credentialsFile).mtimeMs;
      if (mtime === this.credentialsMtime) return;
      const stored = credentialsRead(this.credentialsFile);
      this.credentialsMtime = mtime;
      if (stored.keyId !== this.client.keyId) this.client.useCredentials(stored.keyId, stored.secret);
    } catch { /* keep the key we have */ }
  }
}
