// A small ustar writer and a safe reader, so a release is built and unpacked with node:zlib alone
// (docs/RELEASES.md, "The Node agent"). The writer makes files, folders (and symlinks, for tests); the reader
// refuses absolute paths, `..`, links that leave the folder, devices and FIFOs.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";

const BLOCK = 512;

export class UnsafeArchive extends Error {
  constructor(message) {
    super(message);
    this.name = "UnsafeArchive";
    this.code = "artifact_unsafe";
  }
}

function octal(value, width) {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header({ name, size = 0, mode = 0o644, type = "0", mtime = 0, linkname = "" }) {
  const block = Buffer.alloc(BLOCK);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    // ustar splits a long name at a slash: prefix (155) / name (100).
    const cut = name.lastIndexOf("/", 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`name too long for ustar: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  block.write(base, 0, 100, "utf8");
  block.write(octal(mode, 8), 100, "ascii");
  block.write(octal(0, 8), 108, "ascii");
  block.write(octal(0, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(Math.floor(mtime), 12), 136, "ascii");
  block.write("        ", 148, "ascii");
  block.write(type, 156, "ascii");
  block.write(linkname, 157, 100, "utf8");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  block.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return block;
}

/**
 * A gzip'd ustar archive of `entries`: [{name, data?: Buffer|string, mode?, type?: "file"|"dir"|"symlink",
 * linkname?}] in the given order (names use "/", relative, no leading "./").
 */
export function tarGz(entries, { mtime = 0 } = {}) {
  const parts = [];
  for (const entry of entries) {
    if (entry.type === "dir") {
      parts.push(header({ name: entry.name.replace(/\/?$/, "/"), mode: entry.mode ?? 0o755, type: "5", mtime }));
    } else if (entry.type === "symlink") {
      parts.push(header({ name: entry.name, type: "2", linkname: entry.linkname, mode: 0o777, mtime }));
    } else {
      const data = Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data ?? "", "utf8");
      parts.push(header({ name: entry.name, size: data.length, mode: entry.mode ?? 0o644, mtime }));
      parts.push(data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

/** Every file under `folder` as tar entries (sorted, relative to `folder`, under `into`). */
export function entriesFromFolder(folder, into = "", { skip = () => false } = {}) {
  const entries = [];
  const walk = (dir, rel) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const relName = rel ? `${rel}/${name}` : name;
      if (skip(relName)) continue;
      const stat = statSync(full);
      if (stat.isDirectory()) {
        entries.push({ name: relName, type: "dir" });
        walk(full, relName);
      } else if (stat.isFile()) {
        entries.push({ name: relName, data: readFileSync(full), mode: stat.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  walk(folder, into);
  return entries;
}

function field(block, start, length) {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString("utf8");
}

function parseOctal(block, start, length) {
  const text = field(block, start, length).trim();
  return text ? parseInt(text, 8) : 0;
}

/** The members of a gzip'd tar: [{name, type, mode, data, linkname}] (pax and GNU long names honoured). */
export function tarMembers(gz) {
  const buffer = gunzipSync(gz);
  const members = [];
  let offset = 0;
  let longName = null;
  let pax = {};
  while (offset + BLOCK <= buffer.length) {
    const block = buffer.subarray(offset, offset + BLOCK);
    if (block.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i += 1) sum += i >= 148 && i < 156 ? 32 : block[i];
    if (sum !== parseOctal(block, 148, 8)) throw new UnsafeArchive("a tar header has a bad checksum");
    const size = parseOctal(block, 124, 12);
    const type = String.fromCharCode(block[156] || 48);
    const data = buffer.subarray(offset + BLOCK, offset + BLOCK + size);
    if (data.length < size) throw new UnsafeArchive("the archive is truncated");
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "L") { longName = field(data, 0, data.length); continue; }
    if (type === "x") {
      for (const line of data.toString("utf8").split("\n")) {
        const match = /^\d+ ([^=]+)=(.*)$/.exec(line);
        if (match) pax[match[1]] = match[2];
      }
      continue;
    }
    if (type === "g") continue;
    const prefix = field(block, 345, 155);
    let name = pax.path ?? longName ?? (prefix ? `${prefix}/${field(block, 0, 100)}` : field(block, 0, 100));
    const linkname = pax.linkpath ?? field(block, 157, 100);
    longName = null;
    pax = {};
    name = name.replace(/^(\.\/)+/, "");
    if (name === "" || name === ".") continue;
    members.push({ name, type, mode: parseOctal(block, 100, 8), data, linkname });
  }
  return members;
}

function memberProblem(name) {
  if (!name || name.includes("\0") || name.includes("\\")) return "bad name";
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) return "absolute path";
  if (name.split("/").includes("..")) return "'..' in path";
  return null;
}

function linkEscapes(name, target, hard) {
  if (!target || target.startsWith("/") || target.includes("\\")) return true;
  const resolved = path.posix.normalize(path.posix.join(hard ? "" : path.posix.dirname(name), target));
  return resolved === ".." || resolved.startsWith("../");
}

/**
 * Unpack a gzip'd tar into `destination` (which must not exist yet), through a staging folder beside
 * it: every member is checked before anything is written; an unsafe one throws UnsafeArchive.
 */
export function safeExtract(gz, destination) {
  const members = tarMembers(gz);
  for (const member of members) {
    let bad = memberProblem(member.name);
    if (!bad && (member.type === "1" || member.type === "2") && linkEscapes(member.name, member.linkname, member.type === "1")) {
      bad = "link outside the folder";
    }
    if (!bad && ["3", "4", "6"].includes(member.type)) bad = "device or fifo";
    if (bad) throw new UnsafeArchive(`member ${JSON.stringify(member.name)}: ${bad}`);
  }
  const staging = path.join(path.dirname(destination), `.unpack-${process.pid}-${Date.now()}`);
  mkdirSync(staging, { recursive: true });
  try {
    for (const member of members) {
      const target = path.join(staging, member.name);
      if (!target.startsWith(staging + path.sep)) throw new UnsafeArchive(`member ${member.name} escapes`);
      if (member.type === "5") {
        mkdirSync(target, { recursive: true });
      } else if (member.type === "2") {
        mkdirSync(path.dirname(target), { recursive: true });
        symlinkSync(member.linkname, target);
      } else if (member.type === "1") {
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, readFileSync(path.join(staging, member.linkname)));
      } else if (member.type === "0" || member.type === "7") {
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, member.data, { mode: member.mode & 0o755 || 0o644 });
      }
    }
    renameSync(staging, destination);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
