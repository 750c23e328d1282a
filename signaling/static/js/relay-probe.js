// A relay probe (server: signaling/relay_probes.py): a short peer connection to the media relay
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

async function succeededPair(pc) {
  const report = await pc.getStats();
  let pair = null;
  report.forEach((item) => {
    if (item.type === "candidate-pair" && item.state === "succeeded" && (!pair || item.nominated)) pair = item;
  });
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  return { local: local && local.candidateType, remote: remote && remote.candidateType };
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
