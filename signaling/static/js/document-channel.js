// Sending and receiving end-to-end encrypted documents in a call (browser side).
//
// docs/document-protocol.md §5. Keys go over socket.io (`documents:key`, attested by the
// server), ciphertext over HTTP: resumable PUTs at the server's offset and Range GETs, so a
// dropped connection costs at most one segment. The Python twin is endpoint/document_channel.py.
//
//   const channel = new DocumentChannel(socket, callId);
//   await channel.start();
//   channel.addEventListener("incoming", (e) => channel.receive(e.detail, {onProgress}));
//   await channel.send(file, {onProgress, signal});

import {
  DocumentError,
  SUITE_P256,
  SUITE_X25519,
  b64u,
  decryptDocument,
  describe,
  encryptDocument,
  fingerprint,
  fromB64u,
  generateCallKey,
} from "./document-crypto.js";

// Who a document goes to when the sender picks nobody: the customer and the expert. An
// interpreter only when picked; a device (the document camera) never: it only sends stills,
// and the server refuses a document addressed to it.
export const DEFAULT_RECIPIENT_ROLES = ["customer", "expert"];
export const DEVICE_ROLES = ["document_camera"];
// The office's clerk holds call keys for the chat only: never a recipient of documents.
export const CHAT_ONLY_ROLES = ["clerk"];

const SEGMENT_BYTES = 4 << 20;
const RETRIES = 5;
const ACK_TIMEOUT_MS = 15000;

export class TransferError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "TransferError";
    this.code = code;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class DocumentChannel extends EventTarget {
  /** socket: a connected socket.io client; callId: the call's id; device: "kiosk" | ... */
  constructor(socket, callId, { device = "kiosk", baseUrl = "" } = {}) {
    super();
    this.socket = socket;
    this.callId = callId;
    this.device = device;
    this.baseUrl = baseUrl;
    this.keys = {};
    this.participantId = "";
    this.peers = new Map(); // participant id -> {suite: attested key view}
    this.maxBytes = 50 * 1024 * 1024;
    this.cancelled = new Set();
    this.seen = new Set();
    // Pages of the chat's history (chat.js) that come with our publish, before the chat is
    // mounted on these keys: kept for it (`chatHistorySink`), a bounded few.
    this.chatHistory = [];
    this.chatHistorySink = null;
    this.handlers = {
      "chat:history": (data) => {
        if (data.call_id !== this.callId) return;
        if (this.chatHistorySink) this.chatHistorySink(data);
        else if (this.chatHistory.length < 64) this.chatHistory.push(data);
      },
      "documents:keys": (data) => data.call_id === this.callId && this.applyKeys(data.keys),
      "documents:incoming": (data) => this.announce(data),
      "documents:delivered": (data) => this.emitEvent("delivered", data),
      "documents:cancelled": (data) => {
        this.cancelled.add(data.transfer_id);
        this.emitEvent("cancelled", data);
      },
      // After a reconnect: publish the same keys again; the server answers with what waits.
      connect: () => this.publish().catch((e) => this.emitEvent("error", e)),
    };
  }

  emitEvent(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  request(event, payload) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new TransferError("timeout", `${event}: no answer`)),
                               ACK_TIMEOUT_MS);
      this.socket.emit(event, payload, (ack) => {
        clearTimeout(timer);
        if (ack && ack.ok) resolve(ack);
        else {
          const error = (ack && ack.error) || {};
          reject(new TransferError(error.reason || error.code || "error", error.message));
        }
      });
    });
  }

  async start() {
    this.keys[SUITE_P256] = await generateCallKey(SUITE_P256);
    try {
      this.keys[SUITE_X25519] = await generateCallKey(SUITE_X25519);
    } catch {
      /* a browser without X25519 speaks P-256 only (§1) */
    }
    for (const [name, fn] of Object.entries(this.handlers)) this.socket.on(name, fn);
    await this.publish();
  }

  async publish() {
    const keys = Object.values(this.keys).map((k) => ({ suite: k.suite, public_key: b64u(k.publicBytes) }));
    const ack = await this.request("documents:key", { call_id: this.callId, device: this.device, keys });
    this.participantId = ack.participant_id;
    this.maxBytes = ack.max_document_bytes || this.maxBytes;
    this.applyKeys(ack.keys);
    for (const pending of ack.pending || []) this.announce({ ...pending, call_id: this.callId });
    // Answers to our transfers that came while we were away (the server keeps them for us).
    for (const answer of ack.delivered || []) this.emitEvent("delivered", answer);
  }

  destroy() {
    for (const [name, fn] of Object.entries(this.handlers)) this.socket.off(name, fn);
  }

  applyKeys(views) {
    const peers = new Map();
    for (const view of views) {
      if (!peers.has(view.participant_id)) peers.set(view.participant_id, {});
      peers.get(view.participant_id)[view.suite] = view;
    }
    this.peers = peers;
    this.emitEvent("keys", { peers });
  }

  announce(incoming) {
    if (incoming.call_id !== this.callId || this.seen.has(incoming.transfer_id)) return;
    this.seen.add(incoming.transfer_id);
    this.emitEvent("incoming", incoming);
  }

  /** Fingerprints to read aloud: [{participantId, name, role, fingerprint, self}]. */
  async fingerprints() {
    const out = [];
    const suite = this.keys[SUITE_X25519] ? SUITE_X25519 : SUITE_P256;
    out.push({ participantId: this.participantId, self: true,
               fingerprint: await fingerprint(suite, this.keys[suite].publicBytes) });
    for (const [pid, bySuite] of this.peers) {
      if (pid === this.participantId) continue;
      const view = bySuite[suite] || Object.values(bySuite)[0];
      out.push({ participantId: pid, name: view.name, role: view.role, self: false,
                 fingerprint: view.fingerprint });
    }
    return out;
  }

  /** The attested role of a participant's key ("" when it has none). */
  roleOf(pid) {
    const bySuite = this.peers.get(pid);
    const view = bySuite && Object.values(bySuite)[0];
    return view ? view.role : "";
  }

  /** The people besides us who could be sent a document: never a device, nor the clerk. */
  people() {
    return this.chatPeople().filter((pid) => !CHAT_ONLY_ROLES.includes(this.roleOf(pid)));
  }

  /** Everyone besides us a chat message is sealed to: the people and the office's clerk. */
  chatPeople() {
    return [...this.peers.keys()].filter(
      (pid) => pid !== this.participantId && !DEVICE_ROLES.includes(this.roleOf(pid)));
  }

  /** The default recipients: the customer and the expert. */
  others() {
    return this.people().filter((pid) => DEFAULT_RECIPIENT_ROLES.includes(this.roleOf(pid)));
  }

  suiteFor(recipients) {
    for (const suite of [SUITE_X25519, SUITE_P256]) {
      if (this.keys[suite] && recipients.every((pid) => this.peers.get(pid)?.[suite])) return suite;
    }
    throw new TransferError("no_key", "no key type that every recipient has published");
  }

  /**
   * Encrypt and upload a File/Blob (or {name, bytes}) to `recipients` (default: the
   * customer and the expert, `others()`).
   * onProgress({phase: "encrypt"|"upload", fraction}); signal: AbortSignal to cancel.
   */
  async send(file, { recipients = null, onProgress = null, signal = null } = {}) {
    const name = file.name || "document";
    // A File/Blob, or {name, bytes} (Blob.prototype.bytes is a method, hence the check).
    const bytes = file instanceof Blob ? new Uint8Array(await file.arrayBuffer()) : file.bytes;
    if (bytes.length > this.maxBytes) {
      throw new DocumentError("too_large", `${bytes.length} bytes, limit ${this.maxBytes}`);
    }
    const targets = recipients || this.others();
    if (!targets.length) throw new TransferError("no_recipients", "nobody to send to yet");
    const suite = this.suiteFor(targets);
    const metadata = await describe(name, bytes);
    const publicKeys = targets.map((pid) => fromB64u(this.peers.get(pid)[suite].public_key));
    const ciphertext = await encryptDocument(bytes, metadata, this.keys[suite], publicKeys, {
      signal,
      onProgress: (f) => onProgress && onProgress({ phase: "encrypt", fraction: f }),
    });
    const ack = await this.request("documents:offer", {
      call_id: this.callId, device: this.device, recipients: targets, suite,
      ciphertext_bytes: ciphertext.length, sha256: metadata.sha256, size: metadata.size,
      type: metadata.type,
    });
    const abort = () => this.cancel(ack.transfer_id).catch(() => {});
    if (signal) signal.addEventListener("abort", abort, { once: true });
    try {
      await this.upload(ack.transfer_id, ack.upload_url, ciphertext, onProgress, signal);
    } catch (error) {
      if (signal && signal.aborted) throw new DocumentError("cancelled");
      throw error;
    } finally {
      if (signal) signal.removeEventListener("abort", abort);
    }
    return { transferId: ack.transfer_id, metadata, recipients: targets };
  }

  async cancel(transferId) {
    this.cancelled.add(transferId);
    await this.request("documents:cancel", { transfer_id: transferId });
  }

  async upload(transferId, url, data, onProgress, signal) {
    let offset = 0;
    let failures = 0;
    while (offset < data.length) {
      if (signal && signal.aborted) throw new DocumentError("cancelled");
      const end = Math.min(offset + SEGMENT_BYTES, data.length);
      try {
        const response = await fetch(`${this.baseUrl}${url}&offset=${offset}`, {
          // A Blob body: Chromium uploads a typed-array body roughly ten times slower.
          method: "PUT", body: new Blob([data.subarray(offset, end)]), signal,
          headers: { "content-type": "application/octet-stream" },
        });
        const body = await response.json();
        if (response.ok || (response.status === 409 && "received_bytes" in body)) {
          offset = body.received_bytes;
        } else {
          throw new TransferError(body.error?.code || String(response.status), body.error?.message);
        }
        failures = 0;
      } catch (error) {
        if (error instanceof TransferError || (signal && signal.aborted)) throw error;
        // A network failure: ask the server where the upload stands and go on from there.
        if (++failures > RETRIES) throw new TransferError("unavailable", String(error));
        await sleep(200 * failures);
        try {
          offset = (await this.request("documents:status", { transfer_id: transferId })).received_bytes;
        } catch {
          /* still offline: the next round tries again */
        }
      }
      if (onProgress) onProgress({ phase: "upload", fraction: offset / data.length });
    }
  }

  async download(incoming, onProgress, signal) {
    const total = incoming.ciphertext_bytes;
    const buffer = new Uint8Array(total);
    let have = 0;
    let failures = 0;
    while (have < total) {
      if (this.cancelled.has(incoming.transfer_id)) throw new DocumentError("cancelled");
      try {
        const headers = have ? { range: `bytes=${have}-` } : {};
        const response = await fetch(`${this.baseUrl}${incoming.download_url}`, { headers, signal });
        if (response.status !== 200 && response.status !== 206) {
          const body = await response.json().catch(() => ({}));
          throw new TransferError(body.error?.code || String(response.status), body.error?.message);
        }
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (have + value.length > total) throw new TransferError("too_large", "more bytes than announced");
          buffer.set(value, have);
          have += value.length;
          if (onProgress) onProgress({ phase: "download", fraction: have / total });
        }
        failures = 0;
      } catch (error) {
        if (error instanceof TransferError || (signal && signal.aborted)) throw error;
        if (++failures > RETRIES) throw new TransferError("unavailable", String(error));
        await sleep(200 * failures);
      }
    }
    return buffer;
  }

  /**
   * Download, decrypt and verify an incoming document; report the verdict to the server.
   * Resolves {transferId, metadata, content, sender, senderFingerprint, verified: true};
   * rejects with DocumentError (and nothing of the document is kept) if any check fails.
   */
  async receive(incoming, { onProgress = null, signal = null } = {}) {
    let document;
    try {
      const data = await this.download(incoming, onProgress, signal);
      const me = this.keys[incoming.suite];
      if (!me) throw new DocumentError("bad_header", `unknown suite ${incoming.suite}`);
      document = await decryptDocument(data, me, {
        maxBytes: this.maxBytes, signal,
        onProgress: (f) => onProgress && onProgress({ phase: "decrypt", fraction: f }),
      });
      const attested = this.peers.get(incoming.sender)?.[document.suite];
      if (!attested || attested.public_key !== b64u(document.senderPublic)) {
        document.content.fill(0);
        throw new DocumentError("sender_mismatch", incoming.sender);
      }
    } catch (error) {
      const reason = error instanceof DocumentError ? error.code : "cancelled";
      if (error instanceof DocumentError || (signal && signal.aborted)) {
        await this.request("documents:receipt", {
          transfer_id: incoming.transfer_id, verdict: "refused", reason,
        }).catch(() => {});
      }
      throw error;
    }
    const meta = document.metadata;
    await this.request("documents:receipt", {
      transfer_id: incoming.transfer_id, verdict: "received",
      sha256: meta.sha256, size: meta.size, type: meta.type,
    });
    const sender = this.peers.get(incoming.sender)[document.suite];
    return { transferId: incoming.transfer_id, metadata: meta, content: document.content,
             sender, senderFingerprint: document.senderFingerprint, verified: true };
  }
}
