// The browser's side of the media relay (SFU): one RTCPeerConnection to the relay, which is
// always the SDP offerer. Transport-agnostic: the page supplies `request(name, payload)`, an
// async function that carries "join", "answer" and "publish" to the signaling server and
// resolves to its ack. Server-pushed renegotiation offers are given to `handleOffer(offer)`.
//
//   const client = new RelayClient({ iceServers, request });
//   client.ontrack = (track, { participant_id, source, kind, mid }) => { ... };
//   client.ontrackremoved = (track, meta) => { ... };
//   client.onconnectionstatechange = (state) => { ... };     // RTCPeerConnection.connectionState
//   client.oniceconnectionstatechange = (state) => { ... };  // .iceConnectionState
//   await client.join({ camera: stream, audio: stream }, { hints: { camera: "maintain-framerate" } });
//
// The relay does no ICE restarts: when the link is lost, the caller closes this client
// (`close()`, at once, even mid-negotiation) and joins again with a fresh one; the relay
// replaces the participant's session. `announcedTracks()` lists what this client gave to
// `ontrack`, so the caller can tell which remote tracks did not come back.
//
// An offer's `tracks` list says, per m-line (`mid`), what the participant sends
// (`direction: "send"`, for `source`) and whose track it receives (`direction: "recv"`).
// The relay reuses an m-line for another participant's track after a renegotiation, so the
// meaning of a remote track is looked up by mid on every offer, and `ontrack` fires again
// when it changes.

const KIND_OF = { audio: "audio", camera: "video", document: "video", screen: "video" };

// What a caller may ask of a video source. "maintain-framerate" suits a sign-language
// interpreter (motion matters more than detail); "maintain-resolution" suits the document
// camera (detail matters, frame rate may drop).
const HINTS = {
  "maintain-framerate": { contentHint: "motion", degradationPreference: "maintain-framerate" },
  "maintain-resolution": { contentHint: "detail", degradationPreference: "maintain-resolution" },
  detail: { contentHint: "detail", degradationPreference: "maintain-resolution" },
  text: { contentHint: "text", degradationPreference: "maintain-resolution" },
  balanced: { contentHint: "", degradationPreference: "balanced" },
};

function firstTrack(value, kind) {
  if (!value) return null;
  if (typeof MediaStreamTrack !== "undefined" && value instanceof MediaStreamTrack) return value;
  if (typeof value.getTracks === "function") {
    return value.getTracks().find((track) => track.kind === kind) || null;
  }
  return null;
}

function waitForGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class RelayClient {
  constructor({ iceServers = [], request, gatherTimeoutMs = 3000, iceTransportPolicy = "all" } = {}) {
    if (typeof request !== "function") throw new TypeError("RelayClient needs a request function");
    this.iceServers = iceServers;
    this.iceTransportPolicy = iceTransportPolicy;
    this.request = request;
    this.gatherTimeoutMs = gatherTimeoutMs;
    this.pc = null;
    this.local = {}; // source -> MediaStreamTrack
    this.hints = {}; // source -> hint name
    this.metaByMid = new Map(); // mid -> {mid, kind, source, participant_id, direction}
    this.announced = new Map(); // mid -> "participant_id/source" last given to ontrack
    this.ontrack = null;
    this.ontrackremoved = null;
    this.onconnectionstatechange = null;
    this.oniceconnectionstatechange = null;
    this.closed = false;
    this._queue = Promise.resolve();
  }

  // Join with local media per source: {camera, audio, document, screen}, each a MediaStream
  // or MediaStreamTrack. `hints`: {source: "maintain-framerate" | "maintain-resolution" | ...}.
  async join(streams = {}, { hints = {}, payload = {} } = {}) {
    for (const [source, value] of Object.entries(streams)) {
      const track = firstTrack(value, KIND_OF[source] || "video");
      if (track) this.local[source] = track;
    }
    Object.assign(this.hints, hints);
    const ack = await this.request("join", { ...payload, publish: Object.keys(this.local) });
    const offer = ack && ack.offer ? ack.offer : ack;
    if (!offer || !offer.sdp) throw new Error("join: the server sent no offer");
    await this.handleOffer(offer);
    return ack;
  }

  // Publish another source later; the server answers with a renegotiation offer.
  async publish(source, value, hint) {
    const track = firstTrack(value, KIND_OF[source] || "video");
    if (!track) throw new Error(`publish: no ${source} track`);
    this.local[source] = track;
    if (hint) this.hints[source] = hint;
    const ack = await this.request("publish", { source });
    if (ack && ack.offer && ack.offer.sdp) await this.handleOffer(ack.offer);
    return ack;
  }

  // Stop publishing a source (the track stays the caller's; the server renegotiates).
  async unpublish(source) {
    delete this.local[source];
    delete this.hints[source];
    const ack = await this.request("unpublish", { source });
    if (ack && ack.offer && ack.offer.sdp) await this.handleOffer(ack.offer);
    return ack;
  }

  // Apply a relay offer (the first and every renegotiation) and send the answer.
  handleOffer(offer) {
    const run = this._queue.then(() => this._handleOffer(offer));
    this._queue = run.catch(() => {});
    return run;
  }

  async _handleOffer(offer) {
    if (this.closed) throw new Error("the relay client is closed");
    const pc = this._ensurePeerConnection();
    const previous = new Map(this.metaByMid);
    this.metaByMid = new Map((offer.tracks || []).map((item) => [item.mid, item]));
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    for (const transceiver of pc.getTransceivers()) {
      const meta = this.metaByMid.get(transceiver.mid);
      if (meta && meta.direction === "send") {
        const track = this.local[meta.source] || null;
        transceiver.direction = track ? "sendonly" : "inactive";
        if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
        if (track) await this._applyHint(transceiver.sender, track, meta.source);
      } else if (meta && meta.direction === "recv") {
        transceiver.direction = "recvonly";
      } else if (transceiver.currentDirection !== "stopped" && !transceiver.stopped) {
        transceiver.direction = "inactive";
      }
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await waitForGathering(pc, this.gatherTimeoutMs);
    if (this.closed) throw new Error("the relay client is closed");
    await this.request("answer", { sdp: pc.localDescription.sdp });
    this._announceChanges(previous);
  }

  _ensurePeerConnection() {
    if (this.pc) return this.pc;
    if (this.closed) throw new Error("the relay client is closed");
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    pc.addEventListener("track", (event) => {
      const mid = event.transceiver && event.transceiver.mid;
      const meta = this.metaByMid.get(mid);
      if (meta && meta.direction === "recv") this._announce(mid, event.track, meta);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.closed || this.pc !== pc) return;
      if (this.onconnectionstatechange) this.onconnectionstatechange(pc.connectionState);
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (this.closed || this.pc !== pc) return;
      if (this.oniceconnectionstatechange) this.oniceconnectionstatechange(pc.iceConnectionState);
    });
    this.pc = pc;
    return pc;
  }

  /** The remote tracks given to `ontrack` and still current: [{track, meta}]. */
  announcedTracks() {
    const out = [];
    if (!this.pc) return out;
    for (const transceiver of this.pc.getTransceivers()) {
      const mid = transceiver.mid;
      const meta = this.metaByMid.get(mid);
      if (mid != null && this.announced.has(mid) && meta && meta.direction === "recv") {
        out.push({ track: transceiver.receiver.track, meta: { ...meta, mid } });
      }
    }
    return out;
  }

  _announce(mid, track, meta) {
    const key = `${meta.participant_id}/${meta.source}`;
    if (this.announced.get(mid) === key) return;
    this.announced.set(mid, key);
    if (this.ontrack) {
      this.ontrack(track, {
        participant_id: meta.participant_id,
        source: meta.source,
        kind: meta.kind,
        mid,
      });
    }
  }

  // A reused m-line carries someone else's track now; an m-line no longer listed is gone.
  _announceChanges(previous) {
    if (!this.pc) return;
    for (const transceiver of this.pc.getTransceivers()) {
      const mid = transceiver.mid;
      const meta = this.metaByMid.get(mid);
      const before = previous.get(mid);
      if (before && before.direction === "recv" && (!meta || meta.direction !== "recv" ||
          meta.participant_id !== before.participant_id || meta.source !== before.source)) {
        this.announced.delete(mid);
        if (this.ontrackremoved) this.ontrackremoved(transceiver.receiver.track, before);
      }
      if (meta && meta.direction === "recv") this._announce(mid, transceiver.receiver.track, meta);
    }
  }

  async _applyHint(sender, track, source) {
    const hint = HINTS[this.hints[source]];
    if (!hint || track.kind !== "video") return;
    try {
      if ("contentHint" in track) track.contentHint = hint.contentHint;
    } catch (_error) {
      // some browsers reject unknown hints; media still flows
    }
    try {
      const parameters = sender.getParameters();
      if (!parameters.encodings || parameters.encodings.length === 0) return;
      parameters.degradationPreference = hint.degradationPreference;
      await sender.setParameters(parameters);
    } catch (_error) {
      // degradationPreference is not settable everywhere; contentHint still applies
    }
  }

  // Per remote track: who and what, framesDecoded (video), packets and loss; and the
  // connection's quality: round-trip time of the selected candidate pair and loss ratio.
  async getStats() {
    const result = { tracks: [], rttMs: null, lossRatio: 0, connectionState: "new" };
    if (!this.pc) return result;
    result.connectionState = this.pc.connectionState;
    const report = await this.pc.getStats();
    let received = 0;
    let lost = 0;
    report.forEach((item) => {
      if (item.type === "inbound-rtp") {
        const meta = this.metaByMid.get(item.mid) || {};
        received += item.packetsReceived || 0;
        lost += Math.max(0, item.packetsLost || 0);
        result.tracks.push({
          id: item.id,
          ssrc: item.ssrc,
          mid: item.mid,
          participant_id: meta.participant_id || null,
          source: meta.source || null,
          kind: item.kind,
          framesDecoded: item.framesDecoded || 0,
          packetsReceived: item.packetsReceived || 0,
          packetsLost: item.packetsLost || 0,
          bytesReceived: item.bytesReceived || 0,
          jitter: item.jitter || 0,
          totalSamplesReceived: item.totalSamplesReceived || 0,
        });
      } else if (item.type === "candidate-pair" && item.nominated && item.state === "succeeded") {
        if (typeof item.currentRoundTripTime === "number") {
          result.rttMs = item.currentRoundTripTime * 1000;
        }
      }
    });
    result.lossRatio = received + lost > 0 ? lost / (received + lost) : 0;
    return result;
  }

  // Close the connection. Local tracks belong to the caller and are not stopped; telling the
  // signaling server is the caller's business (its own "leave" event).
  async leave() {
    await this._queue.catch(() => {});
    this.close();
  }

  // Close at once, without waiting for a negotiation in progress (its answer is not sent).
  // No state-change callbacks fire after this; the client cannot be used again.
  close() {
    this.closed = true;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    this.metaByMid.clear();
    this.announced.clear();
  }
}

export default RelayClient;
