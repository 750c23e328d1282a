// The media side of a call in the browser: the local camera and microphone, the one
// RTCPeerConnection to the relay (through RelayClient), remote tracks and the
// connection-quality estimate.
//
// The relay is always the SDP offerer (docs/interfaces.md): `call:join` answers with an offer,
// RelayClient attaches our tracks to the offered transceivers and answers with `call:answer`;
// later renegotiations arrive as `call:offer` pushes. This module binds RelayClient to the
// socket.io events of docs/signaling-events.md and to the page.
//
// Calls survive failures: after every socket.io reconnect the page calls `rejoin()` when
// `flow:sync` says the call is still on (the server dropped the old socket's relay session);
// when the peer connection's ICE or DTLS link is `disconnected` for more than 3 s or `failed`,
// this module joins again by itself. The relay is always the offerer and does no ICE restarts:
// a fresh `call:join` (a fresh RTCPeerConnection) from the same socket replaces the relay
// session. Attempts back off 1 s, 2 s, 4 s, then every 5 s, until the call ends (`close()`).
// The local camera stream is kept across rejoins; the page keeps its own state.
//
// The other side's media is watched too: `getStats()` every 500 ms; a participant whose video
// stops decoding frames (or, without video, whose audio stops arriving) for 1.5 s is reported
// "stalled" through `onRemoteMedia`, so the page can say so instead of showing a frozen frame.
//
// Tests and the call-setup benchmark read the peer connection as `window.__etapalvelu.pc`;
// also there: `rejoins` (how many times this page joined again), `mediaState`
// ("connecting" | "connected" | "reconnecting" | "ended"), `lastRejoinReason`,
// `remoteMedia` ({participant_id: "waiting" | "flowing" | "stalled"}),
// `iceConnectionState`, `connectionState`.

import { RelayClient } from "/static/common/js/relay-client.js";
import { request } from "./session.js";

/** Camera constraints. A sign-language interpreter needs motion more than detail:
 * EN 301 549 §6.5 asks for at least 20 fps at CIF (352×288) or better. */
export function cameraConstraints({ signLanguage = false } = {}) {
  if (signLanguage) {
    return { width: { ideal: 640, min: 352 }, height: { ideal: 480, min: 288 },
             frameRate: { ideal: 30, min: 20 } };
  }
  return { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
}

export async function openCamera({ signLanguage = false, audio = true } = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio,
    video: cameraConstraints({ signLanguage }),
  });
  if (signLanguage) {
    for (const track of stream.getVideoTracks()) track.contentHint = "motion";
  }
  return stream;
}

function debugState() {
  window.__etapalvelu = window.__etapalvelu || {};
  return window.__etapalvelu;
}

// A link that is `disconnected` this long is given up and joined afresh.
export const DISCONNECTED_GRACE_MS = 3000;
// Delays before the 2nd, 3rd, ... consecutive attempt (the first one goes at once).
export const BACKOFF_MS = [1000, 2000, 4000, 5000];
// A fresh peer connection that has not connected this long after the answer is retried.
export const CONNECT_TIMEOUT_MS = 10000;
export const STATS_INTERVAL_MS = 500;
// The other side's media counts as stopped after this long without progress...
export const STALL_MS = 1500;
// ...and a track that never delivered anything, this long after it was announced.
export const FIRST_MEDIA_MS = 6000;

// Refusals that no retry will change: the call ended, we are not in it any more.
const FINAL_ERRORS = new Set(["conflict", "forbidden", "not_found", "unauthenticated", "invalid"]);
const WATCHED_SOURCES = new Set(["camera", "audio"]);

/**
 * One participant's media in one call.
 *
 * callbacks: onTrack({track, mid, kind, source, participantId}),
 *            onTrackRemoved({track, mid, kind, source, participantId}),
 *            onQuality(level, {rttMs, lossRatio}),
 *            onJoined({participantId, call, rejoin}) after every successful call:join,
 *            onState(state) "connecting" | "connected" | "reconnecting" | "ended",
 *            onRemoteMedia(participantId, state) "waiting" | "flowing" | "stalled" | "gone",
 *            onJoinRefused(error) when a rejoin is refused for good (the call has ended).
 */
export class CallMedia {
  constructor(socket, localStream, { signLanguage = false, callbacks = {} } = {}) {
    this.socket = socket;
    this.localStream = localStream;
    this.signLanguage = signLanguage;
    this.callbacks = callbacks;
    this.callId = null;
    this.client = null;
    this.participantId = null;
    this.call = null;
    this.qualityTimer = null;
    this.statsTimer = null;
    this.previousTotals = null;
    this.state = "idle";
    this.rejoins = 0;
    this.attempt = 0; // consecutive attempts since the link was last up
    this.joining = null; // the join in progress (a promise)
    this.queuedReason = null; // a rejoin asked for while one was in progress
    this.retryTimer = null;
    this.graceTimer = null;
    this.connectTimer = null;
    this.flow = new Map(); // participant_id -> {firstSeenAt, lastProgressAt, everFlowed, state}
    this.baseline = new Map(); // `${inbound-rtp stats id}|${participant_id}` -> counter
    this.carried = []; // remote tracks of closed connections, not yet reconciled
    this.sampling = false;
    this.rejoined = false;
    this.relayEpoch = 0; // how many times the server has moved this call to another relay node
    this.screen = null; // the shared screen's track while sharing (published again on rejoin)
    // The call's relay node died or is draining: the server placed it on another node, whose
    // room is empty until we join it. A fresh join (the same as after an ICE failure) does it.
    this.onRelayMoved = (message) => {
      if (!message || message.call_id !== this.callId || this.ended) return;
      if (typeof message.relay_epoch === "number" && message.relay_epoch <= this.relayEpoch) return;
      this.relayEpoch = message.relay_epoch ?? this.relayEpoch + 1;
      debugState().relayMoves = (debugState().relayMoves || 0) + 1;
      this.rejoin("relay_moved");
    };
    // Socket lost: the server drops our relay session, so a rejoin follows the reconnect.
    this.onSocketDown = () => {
      if (!this.ended && this.callId != null) this.setState("reconnecting");
    };
    this.onOffer = (message) => {
      const client = this.client;
      // An offer before our join's answer came belongs to the session being replaced.
      if (client && client.joinAcked && message && message.call_id === this.callId) {
        client.handleOffer(message.offer).catch((error) => {
          if (client === this.client) console.error("renegotiation failed", error);
        });
      }
    };
  }

  get pc() {
    return this.client ? this.client.pc : null;
  }

  /** Join `callId`. Resolves when the first attempt is done: refused for good, it throws;
   * a passing failure (no answer, relay unavailable) is retried in the background. */
  async join(callId) {
    if (this.callId === callId && this.client) return;
    this.close();
    this.callId = callId;
    this.ended = false;
    this.attempt = 0;
    this.socket.on("call:offer", this.onOffer);
    this.socket.on("call:relay_moved", this.onRelayMoved);
    this.socket.on("disconnect", this.onSocketDown);
    this.qualityTimer = setInterval(() => this.measureQuality(), 2000);
    this.statsTimer = setInterval(() => this.sampleMedia(), STATS_INTERVAL_MS);
    this.setState("connecting");
    await this.connect("join", { first: true });
  }

  /** Join the same call again at once (after a socket.io reconnect; the page asks when
   * `flow:sync` says the call is still on). The camera and the page's state stay. */
  rejoin(reason = "reconnect") {
    if (this.ended || this.callId == null) return Promise.resolve();
    this.attempt = 0;
    return this.connect(reason);
  }

  connect(reason, { first = false } = {}) {
    if (this.ended) return Promise.resolve();
    if (this.joining) {
      // The join in flight may have gone out on the socket that was lost: one more after it.
      this.queuedReason = reason;
      return this.joining;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const run = this.attemptJoin(reason, first);
    this.joining = run;
    const after = () => {
      if (this.joining === run) this.joining = null;
      const queued = this.queuedReason;
      this.queuedReason = null;
      if (queued && !this.ended) this.connect(queued);
    };
    run.then(after, after);
    return run;
  }

  async attemptJoin(reason, first) {
    const old = this.client;
    // Tracks of the connection(s) being replaced: those that do not come back are removed
    // once a join succeeds.
    if (old) this.carried.push(...old.announcedTracks());
    if (old) old.close();
    clearTimeout(this.graceTimer);
    clearTimeout(this.connectTimer);
    this.graceTimer = null;
    this.connectTimer = null;
    this.baseline.clear();
    const debug = debugState();
    if (!first) {
      this.rejoined = true; // the link may come up before the join's answer is acknowledged
      this.rejoins += 1;
      debug.rejoins = this.rejoins;
      debug.lastRejoinReason = reason;
      this.setState("reconnecting");
    }
    const client = new RelayClient({
      request: (name, payload) => this.relayRequest(client, name, payload),
    });
    client.joinAcked = false;
    this.client = client;
    client.ontrack = (track, meta) => {
      this.seen(meta.participant_id, meta.source);
      this.callbacks.onTrack?.(this.info(track, meta));
    };
    client.ontrackremoved = (track, meta) => this.trackGone(track, meta);
    client.onconnectionstatechange = (state) => this.linkChanged(client, "connectionState", state);
    client.oniceconnectionstatechange = (state) =>
      this.linkChanged(client, "iceConnectionState", state);
    if (!this.socket.connected) {
      // Nothing to do until the socket is back; the page rejoins after its flow:sync.
      this.setState("reconnecting");
      return;
    }
    const streams = this.localStream ? { camera: this.localStream, audio: this.localStream } : {};
    const hints = this.signLanguage ? { camera: "maintain-framerate" } : {};
    if (this.screen) {
      // A rejoin while sharing: the screen goes out again with the new connection.
      streams.screen = this.screen;
      hints.screen = "detail";
    }
    try {
      await client.join(streams, { hints });
    } catch (error) {
      if (client !== this.client || this.ended) return;
      if (FINAL_ERRORS.has(error.code)) {
        this.setState("ended");
        if (first) throw error;
        this.callbacks.onJoinRefused?.(error);
        return;
      }
      console.warn(`call:join (${reason}) failed, trying again`, error);
      this.setState("reconnecting");
      this.retry("join_failed");
      return;
    }
    if (client !== this.client || this.ended) return;
    // Remote tracks of the old connection that the new one did not bring back are gone.
    const back = new Set(client.announcedTracks().map((x) => this.keyOf(x.meta)));
    const carried = this.carried;
    this.carried = [];
    for (const { track, meta } of carried) {
      if (!back.has(this.keyOf(meta))) this.trackGone(track, meta);
    }
    debug.pc = client.pc;
    debug.callId = this.callId;
    debug.relayClient = client;
    this.armConnectTimer(client);
    if (client.pc && client.pc.connectionState === "connected") this.linkUp();
    this.callbacks.onJoined?.({ participantId: this.participantId, call: this.call,
                                rejoin: !first });
  }

  /** Share a screen (a getDisplayMedia video track) into the call, sent for detail
   * (`contentHint = "detail"`, resolution kept over frame rate): text on it stays legible. */
  async shareScreen(track) {
    this.screen = track;
    if (this.client && this.client.joinAcked) await this.client.publish("screen", track, "detail");
  }

  /** Stop sharing: the others' pictures return to the expert's face. */
  async stopScreen() {
    const track = this.screen;
    this.screen = null;
    if (track) track.stop();
    if (this.client && this.client.joinAcked && !this.ended) await this.client.unpublish("screen");
  }

  keyOf(meta) {
    return `${meta.participant_id}/${meta.source}`;
  }

  // RelayClient's transport: its "join" / "answer" / "publish" become our call events.
  async relayRequest(client, name, payload) {
    if (client !== this.client) throw new Error("a replaced relay client");
    const callId = this.callId;
    if (name === "join") {
      const ack = await request(this.socket, "call:join", { call_id: callId });
      if (client !== this.client) throw new Error("a replaced relay client");
      this.participantId = ack.participant_id;
      this.call = ack.call;
      if (typeof ack.relay_epoch === "number") {
        this.relayEpoch = Math.max(this.relayEpoch, ack.relay_epoch);
      }
      client.iceServers = ack.ice_servers || [];
      client.joinAcked = true;
      return ack;
    }
    if (name === "answer") {
      return request(this.socket, "call:answer", { call_id: callId, sdp: payload.sdp });
    }
    if (name === "publish") {
      return request(this.socket, "call:publish", { call_id: callId, source: payload.source });
    }
    if (name === "unpublish") {
      return request(this.socket, "call:unpublish", { call_id: callId, source: payload.source });
    }
    throw new Error(`unknown relay request ${name}`);
  }

  // ---- the link to the relay ---------------------------------------------------------------

  linkChanged(client, field, value) {
    if (client !== this.client || this.ended) return;
    debugState()[field] = value;
    const pc = client.pc;
    if (!pc) return;
    const ice = pc.iceConnectionState;
    const conn = pc.connectionState;
    if (ice === "failed" || conn === "failed") {
      this.setState("reconnecting");
      this.retry("ice_failed");
    } else if (ice === "disconnected" || conn === "disconnected") {
      this.setState("reconnecting");
      if (!this.graceTimer && !this.retryTimer && !this.joining) {
        this.graceTimer = setTimeout(() => {
          this.graceTimer = null;
          this.retry("ice_disconnected");
        }, DISCONNECTED_GRACE_MS);
      }
    } else if (conn === "connected") {
      this.linkUp();
    }
  }

  linkUp() {
    clearTimeout(this.graceTimer);
    clearTimeout(this.connectTimer);
    this.graceTimer = null;
    this.connectTimer = null;
    this.attempt = 0;
    if (this.rejoined) {
      // A fresh connection: the other side's media gets the usual moment to start again
      // before it counts as stopped (no flash of "connection lost" right after reconnecting).
      this.rejoined = false;
      const now = performance.now();
      for (const entry of this.flow.values()) {
        if (entry.everFlowed) entry.lastProgressAt = Math.max(entry.lastProgressAt, now);
      }
      this.evaluateFlow(now);
    }
    this.setState("connected");
  }

  armConnectTimer(client) {
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (client === this.client && !this.ended && this.state !== "connected") {
        this.retry("connect_timeout");
      }
    }, CONNECT_TIMEOUT_MS);
  }

  /** Another attempt: at once after a working link, then 1 s, 2 s, 4 s, 5 s, 5 s, ... */
  retry(reason) {
    if (this.ended || this.retryTimer) return;
    clearTimeout(this.graceTimer);
    this.graceTimer = null;
    const delay = this.attempt === 0 ? 0 : BACKOFF_MS[Math.min(this.attempt - 1, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect(reason);
    }, delay);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    debugState().mediaState = state;
    this.callbacks.onState?.(state);
  }

  // ---- the other side's media ------------------------------------------------------------

  seen(participantId, source) {
    if (!participantId || !WATCHED_SOURCES.has(source)) return;
    if (!this.flow.has(participantId)) {
      this.flow.set(participantId, { firstSeenAt: performance.now(), lastProgressAt: 0,
                                     everFlowed: false, videoFlowed: false, state: null });
    }
  }

  trackGone(track, meta) {
    this.callbacks.onTrackRemoved?.(this.info(track, meta));
    const pid = meta.participant_id;
    const entry = this.flow.get(pid);
    // A participant whose media never came is forgotten; one whose media stopped stays
    // "stalled" until it flows again (it may come back with new tracks).
    if (entry && !entry.everFlowed && this.client) {
      const still = this.client.announcedTracks().some((x) => x.meta.participant_id === pid);
      if (!still) {
        this.flow.delete(pid);
        this.callbacks.onRemoteMedia?.(pid, "gone");
        this.publishFlow();
      }
    }
  }

  /** The state of a participant's media: "waiting" | "flowing" | "stalled" | null. */
  remoteMedia(participantId) {
    const entry = this.flow.get(participantId);
    return entry ? entry.state : null;
  }

  /** Stop watching a participant (an interpreter who left for good). */
  forget(participantId) {
    if (this.flow.delete(participantId)) this.publishFlow();
  }

  async sampleMedia() {
    const client = this.client;
    if (!client || !client.pc || this.sampling || this.ended) return;
    this.sampling = true;
    let stats;
    try {
      stats = await client.getStats();
    } catch {
      return;
    } finally {
      this.sampling = false;
    }
    if (client !== this.client || this.ended) return;
    const now = performance.now();
    const progress = new Map(); // pid -> {video: bool|null, audio: bool|null}
    for (const track of stats.tracks) {
      const pid = track.participant_id;
      if (!pid || !WATCHED_SOURCES.has(track.source)) continue;
      const video = track.kind === "video";
      const counter = video ? track.framesDecoded : track.packetsReceived;
      const key = `${track.id}|${pid}`;
      const before = this.baseline.get(key);
      this.baseline.set(key, counter);
      const moved = before === undefined ? counter > 0 : counter > before;
      const p = progress.get(pid) || { video: null, audio: null };
      if (video) p.video = Boolean(p.video || moved);
      else p.audio = Boolean(p.audio || moved);
      progress.set(pid, p);
      this.seen(pid, track.source);
    }
    for (const [pid, p] of progress) {
      const entry = this.flow.get(pid);
      if (!entry) continue;
      if (p.video) entry.videoFlowed = true;
      // The picture is what people watch: once his video has come, judge by it (a frozen
      // frame with the sound going on is still a frozen frame); someone without a camera,
      // by his sound.
      const moved = entry.videoFlowed ? Boolean(p.video) : Boolean(p.video || p.audio);
      if (moved) {
        entry.lastProgressAt = now;
        entry.everFlowed = true;
      }
    }
    this.evaluateFlow(now);
  }

  /** Each watched participant's state from the clock; callbacks for the changes. */
  evaluateFlow(now) {
    let changed = false;
    for (const [pid, entry] of this.flow) {
      let state;
      if (entry.everFlowed) state = now - entry.lastProgressAt > STALL_MS ? "stalled" : "flowing";
      else state = now - entry.firstSeenAt > FIRST_MEDIA_MS ? "stalled" : "waiting";
      if (state !== entry.state) {
        entry.state = state;
        changed = true;
        this.callbacks.onRemoteMedia?.(pid, state);
      }
    }
    if (changed) this.publishFlow();
  }

  publishFlow() {
    const view = {};
    for (const [pid, entry] of this.flow) view[pid] = entry.state;
    debugState().remoteMedia = view;
  }

  info(track, meta) {
    return {
      track,
      mid: String(meta.mid),
      kind: meta.kind === "audio" ? "audio" : track.kind,
      source: meta.source,
      participantId: meta.participant_id,
    };
  }

  /** A coarse quality level from the round-trip time and the loss of the last interval. */
  async measureQuality() {
    const client = this.client;
    if (!client || !client.pc) return;
    let stats;
    try {
      stats = await client.getStats();
    } catch {
      return;
    }
    if (client !== this.client) return;
    let received = 0;
    let lost = 0;
    for (const track of stats.tracks) {
      received += track.packetsReceived;
      lost += Math.max(0, track.packetsLost);
    }
    const prev = this.previousTotals || { received: 0, lost: 0 };
    this.previousTotals = { received, lost };
    const dReceived = received - prev.received;
    const dLost = lost - prev.lost;
    const lossRatio = dReceived + dLost > 0 ? dLost / (dReceived + dLost) : 0;
    const rtt = stats.rttMs ?? 0;
    let level = "unknown";
    if (stats.connectionState === "connected" && dReceived > 0) {
      if (rtt < 200 && lossRatio < 0.02) level = "good";
      else if (rtt < 500 && lossRatio < 0.08) level = "fair";
      else level = "poor";
    } else if (["failed", "disconnected"].includes(stats.connectionState)) {
      level = "poor";
    }
    debugState().quality = { level, rttMs: stats.rttMs, lossRatio };
    this.callbacks.onQuality?.(level, { rttMs: stats.rttMs, lossRatio });
  }

  close() {
    this.ended = true;
    if (this.screen) this.screen.stop(); // the browser's "sharing" indicator goes with the call
    this.screen = null;
    for (const timer of [this.retryTimer, this.graceTimer, this.connectTimer]) clearTimeout(timer);
    this.retryTimer = null;
    this.graceTimer = null;
    this.connectTimer = null;
    if (this.qualityTimer) clearInterval(this.qualityTimer);
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.qualityTimer = null;
    this.statsTimer = null;
    this.socket.off("call:offer", this.onOffer);
    this.socket.off("call:relay_moved", this.onRelayMoved);
    this.socket.off("disconnect", this.onSocketDown);
    if (this.client) this.client.leave();
    this.client = null;
    this.callId = null;
    this.joining = null;
    this.queuedReason = null;
    this.carried = [];
    this.rejoined = false;
    this.relayEpoch = 0;
    this.previousTotals = null;
    this.flow.clear();
    this.baseline.clear();
    debugState().pc = null;
    debugState().remoteMedia = {};
    if (this.state !== "idle") this.setState("ended");
  }
}
