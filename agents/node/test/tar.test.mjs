// The release tar: written with node:zlib alone, read back by the safe reader, which refuses members
// that would land outside the release folder.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { artifactBuild } from "../scripts/artifact.mjs";
import { safeExtract, tarGz, tarMembers } from "../src/tar.mjs";

const fresh = () => path.join(mkdtempSync(path.join(tmpdir(), "tar-")), "out");

test("the artifact holds worker-manifest.json at its top level, with the node version", () => {
  const members = tarMembers(artifactBuild({ version: "3.1.4" }));
  const names = members.map((m) => m.name);
  assert.equal(names[0], "worker-manifest.json");
  assert.ok(names.includes("bin/worker.mjs") && names.includes("src/worker.mjs") && names.includes("package.json"));
  assert.ok(!names.some((n) => n.startsWith("package/") || n.startsWith("test")));
  const manifest = JSON.parse(members[0].data.toString());
  assert.equal(manifest.version, "3.1.4");
  assert.equal(manifest.entrypoint, "bin/worker.mjs");
  assert.equal(manifest.node, process.versions.node);
});

test("system tar reads what the writer wrote (long names too), and the safe reader unpacks it", () => {
  const long = `${"d".repeat(90)}/${"e".repeat(60)}/file.txt`;
  const bytes = tarGz([{ name: "a.txt", data: "alpha" }, { name: "bin", type: "dir" },
                       { name: "bin/run.mjs", data: "run", mode: 0o755 }, { name: long, data: "deep" },
                       { name: "link", type: "symlink", linkname: "a.txt" }]);
  const out = fresh();
  safeExtract(bytes, out);
  assert.equal(readFileSync(path.join(out, "a.txt"), "utf8"), "alpha");
  assert.equal(readFileSync(path.join(out, long), "utf8"), "deep");
  assert.equal(readlinkSync(path.join(out, "link")), "a.txt");
  const listed = execFileSync("tar", ["tzf", "-"], { input: bytes }).toString().split("\n");
  assert.ok(listed.includes(long) && listed.includes("bin/run.mjs"));
});

for (const [what, entry] of [
  ["an absolute path", { name: "/etc/evil", data: "x" }],
  ["a '..' path", { name: "bin/../../evil", data: "x" }],
  ["a symlink out of the folder", { name: "out", type: "symlink", linkname: "../../etc/passwd" }],
  ["an absolute symlink", { name: "out", type: "symlink", linkname: "/etc/passwd" }],
]) {
  test(`an archive with ${what} is refused and nothing is unpacked`, () => {
    const out = fresh();
    assert.throws(() => safeExtract(tarGz([{ name: "ok.txt", data: "ok" }, entry]), out), (e) => e.code === "artifact_unsafe");
    assert.ok(!existsSync(out));
  });
}
