// End-to-end encryption of documents in the browser (WebCrypto): docs/document-protocol.md.
//
// The Python twin is endpoint/document_crypto.py; both pass tests/vectors/documents/. Error
// codes are the protocol's (§4), so a refusal reads the same on every side. Decryption hands
// back the content only after every check has passed: nothing partial is ever shown.
//
// Also here: canonical JSON and Ed25519 signatures of service records (§6), and the expert's
// signing key, non-extractable, kept in IndexedDB.

export const SUITE_X25519 = 1;
export const SUITE_P256 = 2;
export const DEFAULT_CHUNK_SIZE = 65536;
const PUBLIC_KEY_LENGTH = { 1: 32, 2: 65 };
const MAGIC = [0x45, 0x54, 0x44, 0x4f, 0x43]; // "ETDOC"
const VERSION = 1;
const MAX_RECIPIENTS = 16;
const MIN_CHUNK = 1 << 6;
const MAX_CHUNK = 1 << 22;
const TAG = 16;
const STANZA = 8 + 64 + TAG;
const FIXED_HEADER = 28;
const META_MAX = 4096;
const PARALLEL_CHUNKS = 16; // WebCrypto work in flight at once (it runs off the main thread)
const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();

export const ALLOWED_TYPES = {
  "application/pdf": [[0x25, 0x50, 0x44, 0x46, 0x2d]],
  "image/jpeg": [[0xff, 0xd8, 0xff]],
  "image/png": [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  "image/tiff": [[0x49, 0x49, 0x2a, 0x00], [0x4d, 0x4d, 0x00, 0x2a]],
};

export const ERROR_MESSAGES = {
  bad_header: "the document header is damaged or not a document of this format",
  not_a_recipient: "this document was not encrypted for you",
  wrong_key: "the document key cannot be opened with your key",
  commitment: "the document key commitment does not match",
  header_mac: "the document header has been altered",
  metadata: "the document description is damaged or altered",
  type_not_allowed: "this file type is not allowed (PDF, JPEG, PNG or TIFF only)",
  too_large: "the document is larger than allowed",
  truncated: "the document is incomplete: part of it is missing",
  trailing_data: "the document has extra data after its end",
  chunk_auth: "part of the document is damaged, missing, repeated or out of order",
  hash_mismatch: "the document content does not match its fingerprint (SHA-256)",
  type_mismatch: "the document content is not of the type it claims",
  bad_input: "the document cannot be encrypted",
  sender_mismatch: "the document was not sent with the key the server attested for its sender",
  cancelled: "the transfer was cancelled",
};

export class DocumentError extends Error {
  constructor(code, detail = "") {
    const message = ERROR_MESSAGES[code] || code;
    super(detail ? `${message} (${detail})` : message);
    this.name = "DocumentError";
    this.code = code;
    this.detail = detail;
  }
}

// ---- bytes -----------------------------------------------------------------------------

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

export function b64u(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromB64u(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new Error("not base64url without padding");
  }
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32(n) {
  return new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

function readU32(b, at) {
  return ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function nonce(index, final) {
  const n = new Uint8Array(12);
  let v = index;
  for (let i = 10; i >= 0 && v > 0; i--) {
    n[i] = v % 256;
    v = Math.floor(v / 256);
  }
  n[11] = final ? 1 : 0;
  return n;
}

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(
    await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8),
  );
}

async function aesKey(raw) {
  return subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

async function gcmSeal(key, iv, data, aad) {
  return new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad || new Uint8Array() }, key, data),
  );
}

async function gcmOpen(key, iv, data, aad) {
  return new Uint8Array(
    await subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad || new Uint8Array() }, key, data),
  );
}

async function hmacSha256(rawKey, data) {
  const key = await subtle.importKey("raw", rawKey, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await subtle.sign("HMAC", key, data));
}

// ---- types and metadata ------------------------------------------------------------------

export function sniffType(bytes) {
  for (const [mime, prefixes] of Object.entries(ALLOWED_TYPES)) {
    for (const prefix of prefixes) {
      if (bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b)) return mime;
    }
  }
  return null;
}

const BAD_NAME = /[/\\\u0000-\u001f\u007f]/;

function validateMetadata(meta) {
  const chars = typeof meta.name === "string" ? [...meta.name].length : 0;
  if (chars < 1 || chars > 255) throw new DocumentError("metadata", "name must be 1-255 characters");
  if (BAD_NAME.test(meta.name) || meta.name === "." || meta.name === "..") {
    throw new DocumentError("metadata", "name contains a path or control character");
  }
  if (!(meta.type in ALLOWED_TYPES)) throw new DocumentError("type_not_allowed", String(meta.type));
  if (!Number.isSafeInteger(meta.size) || meta.size < 0) {
    throw new DocumentError("metadata", "size must be a non-negative integer");
  }
  if (typeof meta.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(meta.sha256)) {
    throw new DocumentError("metadata", "sha256 must be 64 lower-case hex digits");
  }
}

function metadataJson(meta) {
  return canonicalJson({ name: meta.name, sha256: meta.sha256, size: meta.size, type: meta.type });
}

function parseMetadata(bytes) {
  let value;
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    value = parseStrictJson(text);
    if (canonicalJson(value) !== text) throw new Error("not canonical");
  } catch (e) {
    throw new DocumentError("metadata", "not canonical JSON");
  }
  const keys = value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
  if (keys.length !== 4 || !["name", "sha256", "size", "type"].every((k) => keys.includes(k))) {
    throw new DocumentError("metadata", "unexpected fields");
  }
  if (!(value.type in ALLOWED_TYPES)) {
    throw new DocumentError("type_not_allowed", String(value.type).slice(0, 40));
  }
  validateMetadata(value);
  return { name: value.name, type: value.type, size: value.size, sha256: value.sha256 };
}

/** Metadata for a file about to be sent; its type comes from its magic bytes. */
export async function describe(name, content, mime = null) {
  const sniffed = sniffType(content);
  if (!sniffed) throw new DocumentError("type_not_allowed", "unrecognised content");
  if (mime && mime !== sniffed) throw new DocumentError("type_mismatch", `looks like ${sniffed}`);
  const meta = { name, type: sniffed, size: content.length, sha256: hex(await sha256(content)) };
  validateMetadata(meta);
  return meta;
}

// ---- call keys -------------------------------------------------------------------------

function algorithm(suite) {
  if (suite === SUITE_X25519) return { name: "X25519" };
  if (suite === SUITE_P256) return { name: "ECDH", namedCurve: "P-256" };
  throw new DocumentError("bad_input", `unknown suite ${suite}`);
}

/** X25519 if this browser has it in WebCrypto, else P-256. */
export async function preferredSuite() {
  try {
    await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return SUITE_X25519;
  } catch {
    return SUITE_P256;
  }
}

/** A fresh, non-extractable key pair for one call: {suite, privateKey, publicBytes}. */
export async function generateCallKey(suite = null) {
  suite = suite ?? (await preferredSuite());
  const pair = await subtle.generateKey(algorithm(suite), false, ["deriveBits"]);
  const publicBytes = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { suite, privateKey: pair.privateKey, publicBytes };
}

/** A call key from PKCS#8 (test vectors, the endpoint agent's handover). */
export async function importCallKey(suite, pkcs8, publicBytes) {
  const privateKey = await subtle.importKey("pkcs8", pkcs8, algorithm(suite), false, [
    "deriveBits",
  ]);
  return { suite, privateKey, publicBytes };
}

export async function fingerprint(suite, publicBytes) {
  const digest = await sha256(concat(enc.encode("etapalvelu-doc v1 fingerprint"), [suite], publicBytes));
  const groups = [];
  for (let i = 0; i < 4; i++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + digest[5 * i + j];
    groups.push(String(v % 100000).padStart(5, "0"));
  }
  return groups.join(" ");
}

async function exchange(me, peerPublic) {
  if (peerPublic.length !== PUBLIC_KEY_LENGTH[me.suite]) throw new Error("wrong key length");
  const peer = await subtle.importKey("raw", peerPublic, algorithm(me.suite), true, []);
  const params = { name: me.suite === SUITE_X25519 ? "X25519" : "ECDH", public: peer };
  const shared = new Uint8Array(await subtle.deriveBits(params, me.privateKey, 256));
  if (shared.every((b) => b === 0)) throw new Error("low-order public key"); // RFC 7748 §6.1
  return shared;
}

async function fileKeys(fileKey, fileId) {
  const k = await hkdf(fileKey, fileId, enc.encode("etapalvelu-doc v1 keys"), 128);
  return {
    commitment: k.slice(0, 32),
    macKey: k.slice(32, 64),
    metaKey: k.slice(64, 96),
    payloadKey: k.slice(96, 128),
  };
}

async function wrapKey(shared, fileId, suite, senderPublic, recipientPublic) {
  const info = concat(enc.encode("etapalvelu-doc v1 wrap"), [suite], senderPublic, recipientPublic);
  return aesKey(await hkdf(shared, fileId, info, 32));
}

async function recipientId(publicBytes) {
  return (await sha256(publicBytes)).slice(0, 8);
}

function chunkCount(size, chunkSize) {
  return Math.max(1, Math.ceil(size / chunkSize));
}

function headerLength(suite, n) {
  return FIXED_HEADER + PUBLIC_KEY_LENGTH[suite] + STANZA * n + 64;
}

function check(signal) {
  if (signal && signal.aborted) throw new DocumentError("cancelled");
}

// Runs fn(i) for i in [0, count) with a bounded number in flight; reports progress.
async function eachChunk(count, fn, onProgress, signal) {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      check(signal);
      const i = next++;
      await fn(i);
      done++;
      if (onProgress) onProgress(done / count);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_CHUNKS, count) }, worker));
}

// ---- encrypt / decrypt -------------------------------------------------------------------

/**
 * Encrypt `content` (Uint8Array) for every recipient public key; returns the ciphertext.
 * options: {chunkSize, onProgress(fraction), signal (AbortSignal), fileKey, fileId}
 * (fileKey / fileId are for test vectors only).
 */
export async function encryptDocument(content, metadata, sender, recipients, options = {}) {
  const chunkSize = options.chunkSize || DEFAULT_CHUNK_SIZE;
  validateMetadata(metadata);
  if (metadata.size !== content.length) throw new DocumentError("bad_input", "size differs");
  if (hex(await sha256(content)) !== metadata.sha256) {
    throw new DocumentError("bad_input", "sha256 differs");
  }
  if (sniffType(content) !== metadata.type) throw new DocumentError("type_mismatch");
  if (recipients.length < 1 || recipients.length > MAX_RECIPIENTS) {
    throw new DocumentError("bad_input", `1 to ${MAX_RECIPIENTS} recipients`);
  }
  if (chunkSize & (chunkSize - 1) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) {
    throw new DocumentError("bad_input", "chunk size");
  }
  const metaJson = enc.encode(metadataJson(metadata));
  if (metaJson.length > META_MAX) throw new DocumentError("bad_input", "metadata too long");
  const fileKey = options.fileKey || crypto.getRandomValues(new Uint8Array(32));
  const fileId = options.fileId || crypto.getRandomValues(new Uint8Array(16));
  const keys = await fileKeys(fileKey, fileId);
  const secret = concat(fileKey, await sha256(metaJson));

  const parts = [
    new Uint8Array(MAGIC),
    new Uint8Array([VERSION, sender.suite, recipients.length]),
    u32(chunkSize),
    fileId,
    sender.publicBytes,
  ];
  for (const recipient of recipients) {
    let shared;
    try {
      shared = await exchange(sender, recipient);
    } catch (e) {
      throw new DocumentError("bad_input", `unusable recipient key: ${e.message}`);
    }
    const wrap = await wrapKey(shared, fileId, sender.suite, sender.publicBytes, recipient);
    parts.push(await recipientId(recipient), await gcmSeal(wrap, new Uint8Array(12), secret));
  }
  parts.push(keys.commitment);
  const unsigned = concat(...parts);
  const header = concat(unsigned, await hmacSha256(keys.macKey, unsigned));
  const metaRecord = await gcmSeal(await aesKey(keys.metaKey), new Uint8Array(12), metaJson, header);

  const chunks = chunkCount(content.length, chunkSize);
  const payloadStart = header.length + 4 + metaRecord.length;
  const out = new Uint8Array(payloadStart + content.length + TAG * chunks);
  out.set(header, 0);
  out.set(u32(metaRecord.length), header.length);
  out.set(metaRecord, header.length + 4);
  const payloadKey = await aesKey(keys.payloadKey);
  await eachChunk(
    chunks,
    async (i) => {
      const piece = content.subarray(i * chunkSize, (i + 1) * chunkSize);
      const sealed = await gcmSeal(payloadKey, nonce(i, i === chunks - 1), piece);
      out.set(sealed, payloadStart + i * (chunkSize + TAG));
    },
    options.onProgress,
    options.signal,
  );
  return out;
}

/** Parse and bounds-check the plaintext header (§3). */
export function parseHeader(data) {
  if (data.length < FIXED_HEADER || !MAGIC.every((b, i) => data[i] === b)) {
    throw new DocumentError("bad_header", "not an encrypted document");
  }
  if (data[5] !== VERSION) throw new DocumentError("bad_header", `unsupported version ${data[5]}`);
  const suite = data[6];
  const count = data[7];
  if (!(suite in PUBLIC_KEY_LENGTH)) throw new DocumentError("bad_header", `unknown suite ${suite}`);
  if (count < 1 || count > MAX_RECIPIENTS) {
    throw new DocumentError("bad_header", "recipient count out of range");
  }
  const chunkSize = readU32(data, 8);
  if (chunkSize & (chunkSize - 1) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) {
    throw new DocumentError("bad_header", "chunk size out of range");
  }
  const length = headerLength(suite, count);
  if (data.length < length) throw new DocumentError("bad_header", "header is cut short");
  const keyEnd = FIXED_HEADER + PUBLIC_KEY_LENGTH[suite];
  const stanzas = [];
  for (let at = keyEnd; at < keyEnd + STANZA * count; at += STANZA) {
    stanzas.push({ id: data.subarray(at, at + 8), wrapped: data.subarray(at + 8, at + STANZA) });
  }
  return {
    suite,
    chunkSize,
    fileId: data.slice(12, 28),
    senderPublic: data.slice(FIXED_HEADER, keyEnd),
    stanzas,
    commitment: data.slice(length - 64, length - 32),
    mac: data.slice(length - 32, length),
    length,
  };
}

/**
 * Open a document for `me` ({suite, privateKey, publicBytes}); every check of §4 in order.
 * Returns {metadata, content, senderPublic, senderFingerprint}; throws DocumentError.
 * options: {maxBytes, onProgress(fraction), signal}
 */
export async function decryptDocument(data, me, options = {}) {
  const maxBytes = options.maxBytes ?? 50 * 1024 * 1024;
  const header = parseHeader(data);
  if (header.suite !== me.suite) {
    throw new DocumentError("not_a_recipient", "the document uses another key type");
  }
  const myId = await recipientId(me.publicBytes);
  const stanza = header.stanzas.find((s) => equal(s.id, myId));
  if (!stanza) throw new DocumentError("not_a_recipient");
  let secret;
  try {
    const shared = await exchange(me, header.senderPublic);
    const wrap = await wrapKey(shared, header.fileId, header.suite, header.senderPublic, me.publicBytes);
    secret = await gcmOpen(wrap, new Uint8Array(12), stanza.wrapped);
  } catch (e) {
    throw new DocumentError("wrong_key");
  }
  const fileKey = secret.slice(0, 32);
  const metaDigest = secret.slice(32);
  const keys = await fileKeys(fileKey, header.fileId);
  if (!equal(keys.commitment, header.commitment)) throw new DocumentError("commitment");
  const expectedMac = await hmacSha256(keys.macKey, data.subarray(0, header.length - 32));
  if (!equal(expectedMac, header.mac)) throw new DocumentError("header_mac");

  let offset = header.length;
  if (data.length < offset + 4) throw new DocumentError("truncated", "metadata missing");
  const metaLength = readU32(data, offset);
  if (metaLength < TAG + 1 || metaLength > META_MAX + TAG) {
    throw new DocumentError("metadata", "length out of range");
  }
  offset += 4;
  if (data.length < offset + metaLength) throw new DocumentError("truncated", "metadata cut short");
  let metaJson;
  try {
    metaJson = await gcmOpen(
      await aesKey(keys.metaKey),
      new Uint8Array(12),
      data.subarray(offset, offset + metaLength),
      data.subarray(0, header.length),
    );
  } catch (e) {
    throw new DocumentError("metadata", "authentication failed");
  }
  if (!equal(await sha256(metaJson), metaDigest)) {
    throw new DocumentError("metadata", "does not match the sender's key stanza");
  }
  const metadata = parseMetadata(metaJson);
  if (metadata.size > maxBytes) {
    throw new DocumentError("too_large", `${metadata.size} bytes, limit ${maxBytes}`);
  }
  offset += metaLength;

  const chunkSize = header.chunkSize;
  const chunks = chunkCount(metadata.size, chunkSize);
  const payloadLength = metadata.size + TAG * chunks;
  const available = data.length - offset;
  if (available < payloadLength) {
    throw new DocumentError("truncated", `${payloadLength - available} bytes missing`);
  }
  if (available > payloadLength) {
    throw new DocumentError("trailing_data", `${available - payloadLength} extra bytes`);
  }
  const payloadKey = await aesKey(keys.payloadKey);
  const content = new Uint8Array(metadata.size);
  let failed = null;
  await eachChunk(
    chunks,
    async (i) => {
      if (failed !== null) return;
      const start = offset + i * (chunkSize + TAG);
      const end = Math.min(start + chunkSize + TAG, data.length);
      try {
        const plain = await gcmOpen(payloadKey, nonce(i, i === chunks - 1), data.subarray(start, end));
        content.set(plain, i * chunkSize);
      } catch (e) {
        failed = failed === null ? i : Math.min(failed, i);
      }
    },
    options.onProgress,
    options.signal,
  );
  if (failed !== null) {
    content.fill(0); // nothing partial survives a refusal
    throw new DocumentError("chunk_auth", `chunk ${failed} of ${chunks}`);
  }
  if (hex(await sha256(content)) !== metadata.sha256) {
    content.fill(0);
    throw new DocumentError("hash_mismatch");
  }
  if (sniffType(content) !== metadata.type) {
    content.fill(0);
    throw new DocumentError("type_mismatch", `declared ${metadata.type}`);
  }
  return {
    metadata,
    content,
    senderPublic: header.senderPublic,
    suite: header.suite,
    senderFingerprint: await fingerprint(header.suite, header.senderPublic),
  };
}

// ---- chat messages (§8) -----------------------------------------------------------------

export const CHAT_MAX_CHARS = 2000;
// A history page's sealed body (§8, "History"): its ciphertext stays under the server's
// 44,000 base64url characters (signaling/in_call/chat.py), one event well under max_message_bytes.
export const CHAT_HISTORY_MAX_BYTES = 32768;
const CHAT_LABEL = "etapalvelu-chat v1";
// Its own label: a history page cannot be passed off as a live message, nor the other way.
const CHAT_HISTORY_LABEL = "etapalvelu-chat v1 history";
const CHAT_ID = /^[A-Za-z0-9_-]{22}$/; // 16 bytes, base64url
const CHAT_PARTICIPANT = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
const CHAT_ROLE = /^[a-z_]{1,32}$/;

function chatAad(callId, senderId, msgId, label = CHAT_LABEL) {
  return concat(enc.encode(label), enc.encode(`|${callId}|${senderId}|`), msgId);
}

async function chatWrapKey(shared, msgId, suite, senderPublic, recipientPublic, label = CHAT_LABEL) {
  const info = concat(enc.encode(`${label} wrap`), [suite], senderPublic, recipientPublic);
  return aesKey(await hkdf(shared, msgId, info, 32));
}

/** Seal `body` (bytes) under `label` to `recipients`: the §8 construction. */
async function sealChatBody(label, body, me, recipients, { callId, senderId }) {
  const msgId = crypto.getRandomValues(new Uint8Array(16));
  const messageKey = crypto.getRandomValues(new Uint8Array(32));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const aad = chatAad(callId, senderId, msgId, label);
  const ct = await gcmSeal(await aesKey(messageKey), iv, body, aad);
  const keys = {};
  for (const { participantId, publicBytes } of recipients) {
    const shared = await exchange(me, publicBytes);
    const wrapping = await chatWrapKey(shared, msgId, me.suite, me.publicBytes, publicBytes, label);
    const wrapIv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await gcmSeal(wrapping, wrapIv, messageKey,
                                  concat(aad, enc.encode(`|${participantId}`)));
    keys[participantId] = b64u(concat(wrapIv, wrapped));
  }
  messageKey.fill(0);
  return { v: 1, suite: me.suite, id: b64u(msgId), iv: b64u(iv), ct: b64u(ct), keys };
}

/** Open what `sealChatBody` sealed under `label`; resolves the body's bytes. */
async function openChatBody(label, envelope, me, { callId, myId, senderId, senderPublic }) {
  if (!envelope || envelope.v !== 1 || envelope.suite !== me.suite) {
    throw new DocumentError("bad_header", "not a chat message of this version and suite");
  }
  const sealedKey = envelope.keys && envelope.keys[myId];
  if (!sealedKey) throw new DocumentError("not_a_recipient", "not sealed to us");
  try {
    const msgId = fromB64u(envelope.id);
    const aad = chatAad(callId, senderId, msgId, label);
    const sealed = fromB64u(sealedKey);
    const shared = await exchange(me, senderPublic);
    const wrapping = await chatWrapKey(shared, msgId, me.suite, senderPublic, me.publicBytes, label);
    const messageKey = await gcmOpen(wrapping, sealed.slice(0, 12), sealed.slice(12),
                                     concat(aad, enc.encode(`|${myId}`)));
    const body = await gcmOpen(await aesKey(messageKey), fromB64u(envelope.iv), fromB64u(envelope.ct), aad);
    messageKey.fill(0);
    return body;
  } catch {
    throw new DocumentError("chunk_auth", "the message does not open with our key from this sender");
  }
}

/**
 * Seal a chat message to the call's people: a random message key under AES-GCM, wrapped to
 * each recipient's call key by ECDH from the sender's call key (only he or that recipient
 * can derive the wrapping key, so a message that opens is from the attested sender).
 * recipients: [{participantId, publicBytes}] (the attested keys of `suite`).
 * Returns the envelope {v, suite, id, iv, ct, keys: {participantId: wrapped}} (base64url).
 */
export async function sealChat(text, me, recipients, { callId, senderId, sentAt = null }) {
  if (typeof text !== "string" || !text.trim()) throw new DocumentError("bad_input", "empty message");
  if (text.length > CHAT_MAX_CHARS) throw new DocumentError("too_large", `${text.length} characters`);
  const body = enc.encode(JSON.stringify({ text, sent_at: sentAt || new Date().toISOString() }));
  return sealChatBody(CHAT_LABEL, body, me, recipients, { callId, senderId });
}

/**
 * Open a chat message sealed to `myId` by `senderId`, whose attested public key is
 * `senderPublic`. Resolves {id, text, sentAt}; throws DocumentError when it is not ours, was
 * changed, or is not from that sender.
 */
export async function openChat(envelope, me, { callId, myId, senderId, senderPublic }) {
  const body = await openChatBody(CHAT_LABEL, envelope, me, { callId, myId, senderId, senderPublic });
  const value = JSON.parse(new TextDecoder().decode(body));
  if (typeof value.text !== "string" || value.text.length > CHAT_MAX_CHARS) {
    throw new DocumentError("metadata", "not a chat message");
  }
  return { id: envelope.id, text: value.text, sentAt: String(value.sent_at || "") };
}

/** The UTF-8 body of a history page: {after, messages: [{id, from, name, role, sent_at, text}]}. */
export function chatHistoryBody(after, messages) {
  return enc.encode(JSON.stringify({
    after: after || "",
    messages: messages.map((m) => ({ id: m.id, from: m.from, name: m.name, role: m.role,
                                     sent_at: m.sent_at, text: m.text })),
  }));
}

/**
 * Seal a page of the chat's history to one person whose call key is new (§8, "History"):
 * `messages` [{id, from, name, role, sent_at, text}] in the order this page holds them,
 * `after` the id of the message before the first one ("" at the start).
 * recipient: {participantId, publicBytes}. Returns an envelope sealed to him alone.
 */
export async function sealChatHistory(messages, me, recipient, { callId, senderId, after = "" }) {
  const body = chatHistoryBody(after, messages);
  if (body.length > CHAT_HISTORY_MAX_BYTES) throw new DocumentError("too_large", `${body.length} bytes`);
  return sealChatBody(CHAT_HISTORY_LABEL, body, me, [recipient], { callId, senderId });
}

function checkHistoryPage(value) {
  const bad = (why) => new DocumentError("metadata", `not a chat history page: ${why}`);
  if (!value || typeof value !== "object" || Array.isArray(value)) throw bad("not an object");
  if (Object.keys(value).sort().join() !== "after,messages") throw bad("fields");
  if (value.after !== "" && !CHAT_ID.test(value.after)) throw bad("after");
  const { messages } = value;
  if (!Array.isArray(messages) || !messages.length) throw bad("no messages");
  const ids = new Set();
  for (const m of messages) {
    if (!m || typeof m !== "object" || Object.keys(m).sort().join() !== "from,id,name,role,sent_at,text") {
      throw bad("message fields");
    }
    if (typeof m.id !== "string" || !CHAT_ID.test(m.id) || ids.has(m.id)) throw bad("message id");
    ids.add(m.id);
    if (typeof m.from !== "string" || !CHAT_PARTICIPANT.test(m.from)) throw bad("sender");
    if (typeof m.name !== "string" || m.name.length > 200) throw bad("name");
    if (typeof m.role !== "string" || !CHAT_ROLE.test(m.role)) throw bad("role");
    if (typeof m.sent_at !== "string" || m.sent_at.length > 40 || Number.isNaN(Date.parse(m.sent_at))) {
      throw bad("time");
    }
    if (typeof m.text !== "string" || !m.text.trim() || m.text.length > CHAT_MAX_CHARS) throw bad("text");
  }
  return value;
}

/**
 * Open a history page sealed to `myId` by `senderId` (the holder who forwards it, whose
 * attested key is `senderPublic`). Resolves {after, messages}; throws DocumentError (and
 * nothing of the page is used) when it does not open or any message in it is malformed.
 */
export async function openChatHistory(envelope, me, { callId, myId, senderId, senderPublic }) {
  const body = await openChatBody(CHAT_HISTORY_LABEL, envelope, me,
                                  { callId, myId, senderId, senderPublic });
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new DocumentError("metadata", "not a chat history page: not JSON");
  }
  return checkHistoryPage(value);
}

// ---- canonical JSON (§6) -----------------------------------------------------------------

export class CanonicalJSONError extends Error {}

function canonicalString(s) {
  // JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 asks, but lone surrogates as \udXXX;
  // we refuse them instead (the Python side cannot encode them in UTF-8 either).
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s)) {
    throw new CanonicalJSONError("strings must not contain lone surrogates");
  }
  return JSON.stringify(s);
}

function utf16Compare(a, b) {
  // Plain string comparison in JS is by UTF-16 code units: what RFC 8785 §3.2.3 wants.
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Canonical JSON text of a value: integers only, sorted keys, no whitespace. */
export function canonicalJson(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new CanonicalJSONError("floats are not allowed");
    if (!Number.isSafeInteger(value)) throw new CanonicalJSONError(`integer ${value} out of range`);
    return String(value === 0 ? 0 : value);
  }
  if (typeof value === "string") return canonicalString(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(utf16Compare);
    return `{${keys.map((k) => `${canonicalString(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  throw new CanonicalJSONError(`type ${typeof value} is not JSON`);
}

/**
 * JSON.parse cannot tell 1.0 from 1 nor see duplicate keys, so records in text form go through
 * this strict parser: floats, exponents, duplicate keys and NaN are refused.
 */
export function parseStrictJson(text) {
  let at = 0;
  const fail = (why) => {
    throw new CanonicalJSONError(`${why} at position ${at}`);
  };
  const ws = () => {
    while (at < text.length && " \t\n\r".includes(text[at])) at++;
  };
  const value = () => {
    ws();
    const c = text[at];
    if (c === "{") {
      at++;
      const obj = {};
      const seen = new Set();
      ws();
      if (text[at] === "}") {
        at++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[at] !== '"') fail("expected a key");
        const key = string();
        if (seen.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        seen.add(key);
        ws();
        if (text[at++] !== ":") fail("expected ':'");
        Object.defineProperty(obj, key, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at++] === "}") return obj;
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      at++;
      const arr = [];
      ws();
      if (text[at] === "]") {
        at++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at++] === "]") return arr;
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return v;
      }
    }
    const m = /^-?(0|[1-9][0-9]*)([.eE])?/.exec(text.slice(at, at + 40));
    if (!m) fail("unexpected character");
    if (m[2]) fail("floats are not allowed");
    at += m[0].length;
    const n = Number(m[0]);
    if (!Number.isSafeInteger(n)) fail("integer out of range");
    return n;
  };
  const string = () => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/.exec(text.slice(at));
    if (!m) fail("bad string");
    at += m[0].length;
    return JSON.parse(m[0]);
  };
  const result = value();
  ws();
  if (at !== text.length) fail("trailing characters");
  return result;
}

// ---- record signatures (§6) --------------------------------------------------------------

/** Sign a service record's canonical JSON with an Ed25519 CryptoKey; returns base64url. */
export async function signRecord(record, privateKey) {
  const message = enc.encode(canonicalJson(record));
  return b64u(new Uint8Array(await subtle.sign({ name: "Ed25519" }, privateKey, message)));
}

/** Throws Error with the reason if the signature does not hold; resolves true if it does. */
export async function verifyRecord(record, signature, publicKeyB64u) {
  let message;
  try {
    const value = typeof record === "string" ? parseStrictJson(record) : record;
    if (!value || typeof value !== "object" || Array.isArray(value)) {
      throw new CanonicalJSONError("a service record must be a JSON object");
    }
    message = enc.encode(canonicalJson(value));
  } catch (e) {
    throw new Error(`record is not canonical JSON: ${e.message}`);
  }
  let key;
  let sig;
  try {
    key = await subtle.importKey("raw", fromB64u(publicKeyB64u), { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new Error("public key is not an Ed25519 key (32 bytes, base64url)");
  }
  try {
    sig = fromB64u(signature);
  } catch {
    throw new Error("signature is not base64url");
  }
  if (sig.length !== 64) throw new Error("signature must be 64 bytes");
  if (!(await subtle.verify({ name: "Ed25519" }, key, sig, message))) {
    throw new Error(
      "signature does not match: the record was changed after signing, or it was signed with another key",
    );
  }
  return true;
}

const KEY_DB = "etapalvelu-signing";
const KEY_STORE = "keys";

function openKeyDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(KEY_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(KEY_STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function idb(db, mode, fn) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(KEY_STORE, mode);
    const request = fn(tx.objectStore(KEY_STORE));
    tx.oncomplete = () => resolve(request.result);
    tx.onerror = () => reject(tx.error);
  });
}

/**
 * The expert's signing key for `userId`: loaded from IndexedDB, or generated (Ed25519,
 * private key non-extractable: the page can sign with it but nobody can read it out).
 * Returns {privateKey, publicKey, publicKeyB64u, created}. Register publicKeyB64u with the
 * server (`signing:register_key`) when `created` is true.
 */
export async function loadOrCreateSigningKey(userId) {
  const db = await openKeyDb();
  const id = `user:${userId}`;
  let pair = await idb(db, "readonly", (store) => store.get(id));
  let created = false;
  if (!pair) {
    pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    await idb(db, "readwrite", (store) => store.put(pair, id));
    created = true;
  }
  db.close();
  const publicKeyB64u = b64u(new Uint8Array(await subtle.exportKey("raw", pair.publicKey)));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, publicKeyB64u, created };
}

/**
 * The expert's signing key, registered with the server when it is new (or not yet stored
 * there): `signing:register_key` with a proof of possession. Resolves the key from
 * loadOrCreateSigningKey. `socket` is the console's connected socket.io client.
 */
export async function ensureSigningKeyRegistered(socket, userId, { registeredKey = null } = {}) {
  const key = await loadOrCreateSigningKey(userId);
  if (!key.created && registeredKey === key.publicKeyB64u) return key;
  const statement = {
    purpose: "etapalvelu.register_signing_key", public_key: key.publicKeyB64u, user_id: userId,
  };
  const proof = await signRecord(statement, key.privateKey);
  const ack = await new Promise((resolve) => {
    socket.emit("signing:register_key", { public_key: key.publicKeyB64u, proof }, resolve);
  });
  if (!ack || !ack.ok) {
    throw new Error(`signing key not registered: ${(ack && ack.error && ack.error.message) || "no answer"}`);
  }
  return key;
}
