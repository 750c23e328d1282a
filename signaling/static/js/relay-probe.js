// A relay probe (server: signaling/flow/relay_probes.py): a short peer connection to the media relay
// that must reach "connected", as a call's must. Used by the kiosk's self-test
// (endpoint/static/kiosk/self-test.js, over the socket) and the home customer's device check
// (signaling/static/join/join.js, over HTTP); the page supplies the transport:
//
//   const { pair } = await runRelayProbe({
//     open: async () => ({ probe_id, offer, ice_servers? }),  // throws when refused
//     answer: async (probeId, sdp) => {},                     // throws when refused
//     close: (probeId) => {},                                 // fire and forget
//     iceServers,          // when `open` gives none
//     setupMs, connectMs,  // limits: open + answer; then "connected"
//   });
//
// Resolves to {probeId, ms, pair: {local, remote} | null} (the candidate types of the pair that
// succeeded); rejects with `error.code` "relay_timeout" or "relay_failed", or the error `open`
// or `answer` threw. The peer connection is closed and the probe's room closed in any case.
//
// `runTurnProbe` (below) checks the TURN servers on their own: a relayed address must be
// allocated with the credentials the service handed out.

function timeout(ms, code) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(code), { code })), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

async function within(promise, ms, code) {
  if (!ms) return promise;
  const limit = timeout(ms, code);
  try {
    return await Promise.race([promise, limit.promise]);
  } finally {
    limit.cancel();
  }
}

function waitGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function waitConnected(pc) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const value = pc.connectionState;
      if (value === "connected") resolve();
      if (value === "failed" || value === "closed") {
        reject(Object.assign(new Error(value), { code: "relay_failed" }));
      }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

function pairOf(report) {
  let pair = null;
  report.forEach((item) => {
    if (item.type === "candidate-pair" && item.state === "succeeded" && (!pair || item.nominated)) pair = item;
  });
  return pair;
}

// Right after "connected" Chromium's stats can still show the nominated pair, the transport's
// selected one, as "in-progress" (seen in about one device check in five with TURN servers
// handed out): ask again for a moment before calling the check failed.
async function succeededPair(pc, attempts = 10, spacingMs = 100) {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const report = await pc.getStats();
    const pair = pairOf(report);
    if (pair) {
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      return { local: local && local.candidateType, remote: remote && remote.candidateType };
    }
    await new Promise((resolve) => setTimeout(resolve, spacingMs));
  }
  return null;
}

export async function runRelayProbe({
  open, answer, close, iceServers = [], setupMs = 0, connectMs = 10000, gatherMs = 3000,
}) {
  const started = performance.now();
  let probeId = null;
  let pc = null;
  let finished = false;
  try {
    let connected = null;
    await within((async () => {
      const opened = await open();
      if (finished) { // too late: the caller has given up
        Promise.resolve().then(() => close(opened.probe_id)).catch(() => {});
        return;
      }
      probeId = opened.probe_id;
      pc = new RTCPeerConnection({
        iceServers: opened.ice_servers || iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require",
      });
      await pc.setRemoteDescription({ type: "offer", sdp: opened.offer.sdp });
      // Nothing is sent or received: the probe tests the path.
      for (const transceiver of pc.getTransceivers()) transceiver.direction = "inactive";
      await pc.setLocalDescription(await pc.createAnswer());
      await waitGathering(pc, gatherMs);
      connected = within(waitConnected(pc), connectMs, "relay_timeout");
      connected.catch(() => {}); // awaited below; not unhandled if the answer fails first
      await answer(probeId, pc.localDescription.sdp);
    })(), setupMs, "relay_timeout");
    await connected;
    return { probeId, ms: Math.round(performance.now() - started), pair: await succeededPair(pc) };
  } finally {
    finished = true;
    if (pc) pc.close();
    if (probeId) Promise.resolve().then(() => close(probeId)).catch(() => {});
  }
}

// TURN credentials refused (RFC 8489 §14.8 401, §14.9 438 stale nonce; RFC 8656 §18 403, 441
// wrong credentials): the service's configuration is at fault, not the customer's network.
const TURN_REFUSED = new Set([401, 403, 438, 441]);
// W3C webrtc-pc, RTCPeerConnectionIceErrorEvent: errorCode 701 = the server could not be reached.
const TURN_UNREACHABLE = 701;

function isTurnUrl(url) {
  return /^turns?:/i.test(url);
}

/** The TURN servers among RTCIceServer dicts (with their credentials), STUN URLs left out. */
export function turnServers(iceServers = []) {
  const found = [];
  for (const server of iceServers) {
    const urls = [].concat(server.urls || []).filter(isTurnUrl);
    if (urls.length) found.push({ ...server, urls });
  }
  return found;
}

// A TURN allocation check: a peer connection restricted to relayed candidates
// (iceTransportPolicy "relay") gathers through the given TURN servers with the credentials
// they carry (the short-lived ones the service minted, turn_config/credentials.py). A relay
// candidate means coturn allocated a relayed address for these credentials. Nothing is sent
// to any peer.
//
//   const { state, reason, url, ms } = await runTurnProbe({ iceServers, waitMs });
//
// state "ok" | "failed" | "skipped" (no TURN server handed out); reason when failed:
// "refused" (401/403/438/441: credentials refused), "unreachable" (701, or no answer within
// `waitMs`: coturn down or the network blocks its ports), "error" (another TURN error code);
// url: the server that gave the relay candidate or the last error.
export async function runTurnProbe({ iceServers = [], waitMs = 5000 } = {}) {
  const servers = turnServers(iceServers);
  if (!servers.length) return { state: "skipped", reason: null, url: null, ms: 0 };
  const started = performance.now();
  const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: "relay" });
  const errors = [];
  try {
    const outcome = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), waitMs);
      pc.addEventListener("icecandidateerror", (event) => {
        errors.push({ code: event.errorCode, text: event.errorText, url: event.url });
      });
      pc.addEventListener("icecandidate", (event) => {
        if (event.candidate && / typ relay /.test(event.candidate.candidate)) {
          clearTimeout(timer);
          resolve({ url: event.url || null });
        } else if (!event.candidate) { // gathering complete without a relayed address
          clearTimeout(timer);
          resolve(null);
        }
      });
    });
    pc.createDataChannel("turn-check"); // something to gather candidates for
    await pc.setLocalDescription(await pc.createOffer());
    const found = await outcome;
    const ms = Math.round(performance.now() - started);
    if (found) return { state: "ok", reason: null, url: found.url, ms };
    const refused = errors.find((error) => TURN_REFUSED.has(error.code));
    const other = errors.find((error) => error.code !== TURN_UNREACHABLE && !TURN_REFUSED.has(error.code));
    const reason = refused ? "refused" : other ? "error" : "unreachable";
    const last = refused || other || errors[errors.length - 1];
    return { state: "failed", reason, url: last ? last.url : null, ms, errors };
  } finally {
    pc.close();
  }
}
