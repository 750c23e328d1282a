// The media side of a call in the browser: the local camera and microphone, the one
// RTCPeerConnection to the relay (through RelayClient), remote tracks and the
// connection-quality estimate.
//
// The relay is always the SDP offerer (docs/interfaces.md): `call:join` answers with an offer,
// RelayClient attaches our tracks to the offered transceivers and answers with `call:answer`;
// later renegotiations arrive as `call:offer` pushes. This module binds RelayClient to the
// socket.io events of docs/signaling-events.md and to the page.
//
// Tests and the call-setup benchmark read the peer connection as `window.__etapalvelu.pc`.

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

/**
 * One participant's media in one call.
 *
 * callbacks: onTrack({track, mid, kind, source, participantId}),
 *            onTrackRemoved({track, mid, kind, source, participantId}),
 *            onQuality(level, {rttMs, lossRatio})
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
    this.previousTotals = null;
    this.onOffer = (message) => {
      if (this.client && message && message.call_id === this.callId) {
        this.client.handleOffer(message.offer).catch((error) => {
          console.error("renegotiation failed", error);
        });
      }
    };
  }

  get pc() {
    return this.client ? this.client.pc : null;
  }

  async join(callId) {
    if (this.callId === callId && this.client) return;
    this.close();
    this.callId = callId;
    const client = new RelayClient({ request: (name, payload) => this.relayRequest(name, payload) });
    this.client = client;
    client.ontrack = (track, meta) => this.callbacks.onTrack?.(this.info(track, meta));
    client.ontrackremoved = (track, meta) => this.callbacks.onTrackRemoved?.(this.info(track, meta));
    client.onconnectionstatechange = (state) => { debugState().connectionState = state; };
    this.socket.on("call:offer", this.onOffer);
    const streams = this.localStream ? { camera: this.localStream, audio: this.localStream } : {};
    const hints = this.signLanguage ? { camera: "maintain-framerate" } : {};
    await client.join(streams, { hints });
    debugState().pc = client.pc;
    debugState().callId = callId;
    debugState().relayClient = client;
    this.qualityTimer = setInterval(() => this.measureQuality(), 2000);
  }

  // RelayClient's transport: its "join" / "answer" / "publish" become our call events.
  async relayRequest(name, payload) {
    const callId = this.callId;
    if (name === "join") {
      const ack = await request(this.socket, "call:join", { call_id: callId });
      this.participantId = ack.participant_id;
      this.call = ack.call;
      this.client.iceServers = ack.ice_servers || [];
      return ack;
    }
    if (name === "answer") {
      return request(this.socket, "call:answer", { call_id: callId, sdp: payload.sdp });
    }
    if (name === "publish") {
      return request(this.socket, "call:publish", { call_id: callId, source: payload.source });
    }
    throw new Error(`unknown relay request ${name}`);
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
    if (!this.client || !this.client.pc) return;
    const stats = await this.client.getStats();
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
    if (this.qualityTimer) clearInterval(this.qualityTimer);
    this.qualityTimer = null;
    this.socket.off("call:offer", this.onOffer);
    if (this.client) this.client.leave();
    this.client = null;
    this.callId = null;
    this.previousTotals = null;
    debugState().pc = null;
  }
}
