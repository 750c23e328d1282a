// The kiosk's device self-test (issue 18; server: signaling/flow/kiosk_health.py).
//
// At start-up and then every `next_seconds` the server gives (an hour by default) the kiosk tests
//   camera      getUserMedia({video}) and a decoded frame within a few seconds;
//   microphone  getUserMedia({audio}) and whether any sound level arrives (a dead input gives
//               exact zeros: "unknown/silent", since a quiet room is no failure);
//   speaker     an audio output device is listed (enumerateDevices "audiooutput"), the page's
//               AudioContext runs and a short quiet tone goes through it to the output. What a
//               browser cannot know is whether sound really comes out of the loudspeaker (cable,
//               volume knob): "ok" means the output path works, no more;
//   relay       a short peer connection to the media relay (`selftest:relay_probe`; the shared
//               /static/common/js/relay-probe.js): ICE and DTLS must come up within 10 s, as
//               they must for a call.
// and reports it (`selftest:report`). Nothing is shown to the customer and nothing is blocked: a
// kiosk with a broken camera still hands out tickets; the clerk's console and the
// administrator's pages show what failed. A test that falls due during a call waits for its end.
//
//   const selfTest = startSelfTest(socket, { busy: () => Boolean(state.call) });
//   selfTest.run("manual");  selfTest.last;  selfTest.stop();

import { runRelayProbe } from "/static/common/js/relay-probe.js";

const CAMERA_MS = 6000;
const MICROPHONE_MS = 4000;
const RELAY_MS = 10000;
const RETRY_BUSY_MS = 60000;
const FALLBACK_SECONDS = 3600;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms, code) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(Object.assign(new Error(code), { code })), ms); }),
  ]);
}

function request(socket, event, payload, ms = 10000) {
  return withTimeout(new Promise((resolve, reject) => {
    socket.emit(event, payload, (ack) => {
      if (ack && ack.ok) resolve(ack);
      else reject(Object.assign(new Error(ack?.error?.message || event), { code: ack?.error?.reason || "refused" }));
    });
  }), ms, "no_answer");
}

/** A getUserMedia failure as a check's code: "<device>_missing" etc. */
function mediaCode(device, error) {
  const name = error && error.name;
  if (error && error.code === "timeout") return `${device}_timeout`;
  if (name === "NotFoundError" || name === "OverconstrainedError") return `${device}_missing`;
  if (name === "NotAllowedError" || name === "SecurityError") return `${device}_denied`;
  if (name === "NotReadableError" || name === "AbortError") return `${device}_busy`;
  return `${device}_error`;
}

function stopAll(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

async function getMedia(constraints, device, ms) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw Object.assign(new Error("no mediaDevices"), { name: "NotFoundError" });
  }
  try {
    return await withTimeout(navigator.mediaDevices.getUserMedia(constraints), ms, "timeout");
  } catch (error) {
    throw Object.assign(new Error(String(error && error.message)), { check: mediaCode(device, error) });
  }
}

export async function checkCamera() {
  const started = performance.now();
  let stream = null;
  try {
    stream = await getMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } }, "camera", CAMERA_MS);
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    await withTimeout((async () => {
      await video.play();
      // A decoded frame, not just an open device (a camera can open and give nothing).
      if (video.requestVideoFrameCallback) await new Promise((resolve) => video.requestVideoFrameCallback(resolve));
      while (!video.videoWidth) await sleep(50);
    })(), CAMERA_MS, "timeout").catch(() => { throw Object.assign(new Error("no frame"), { check: "camera_no_picture" }); });
    video.srcObject = null;
    return { status: "ok", code: "ok", ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { status: "fail", code: error.check || "camera_error", ms: Math.round(performance.now() - started) };
  } finally {
    stopAll(stream);
  }
}

export async function checkMicrophone() {
  const started = performance.now();
  let stream = null;
  let context = null;
  try {
    stream = await getMedia({ audio: true }, "microphone", MICROPHONE_MS);
    const track = stream.getAudioTracks()[0];
    if (!track || track.readyState !== "live") return { status: "fail", code: "microphone_ended" };
    context = new AudioContext();
    await context.resume().catch(() => {});
    const analyser = context.createAnalyser();
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let peak = 0;
    for (let i = 0; i < 10 && peak === 0; i += 1) {
      await sleep(60);
      analyser.getFloatTimeDomainData(samples);
      for (const value of samples) peak = Math.max(peak, Math.abs(value));
    }
    const ms = Math.round(performance.now() - started);
    // Exact zeros: a muted or dead input, or a perfectly silent room — the browser cannot tell.
    return peak > 0 ? { status: "ok", code: "ok", ms } : { status: "unknown", code: "silent", ms };
  } catch (error) {
    return { status: "fail", code: error.check || "microphone_error", ms: Math.round(performance.now() - started) };
  } finally {
    stopAll(stream);
    if (context) context.close().catch(() => {});
  }
}

export async function checkSpeaker() {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  let context = null;
  try {
    const devices = navigator.mediaDevices && navigator.mediaDevices.enumerateDevices
      ? await navigator.mediaDevices.enumerateDevices() : [];
    if (!devices.some((d) => d.kind === "audiooutput")) return { status: "fail", code: "speaker_missing", ms: ms() };
    if (typeof AudioContext === "undefined") return { status: "fail", code: "no_webaudio", ms: ms() };
    context = new AudioContext();
    await withTimeout(context.resume(), 1500, "timeout").catch(() => {});
    if (context.state !== "running") return { status: "fail", code: "audio_blocked", ms: ms() };
    // A short, quiet tone to the output, measured on its way there.
    const tone = context.createOscillator();
    tone.frequency.value = 880;
    const gain = context.createGain();
    gain.gain.value = 0.03;
    const analyser = context.createAnalyser();
    tone.connect(gain);
    gain.connect(context.destination);
    gain.connect(analyser);
    const before = context.currentTime;
    tone.start();
    await sleep(200);
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    tone.stop();
    const peak = samples.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
    if (!(peak > 0) || context.currentTime <= before) return { status: "fail", code: "no_output", ms: ms() };
    return { status: "ok", code: "tone_played", ms: ms() };
  } catch (error) {
    return { status: "fail", code: "speaker_error", ms: ms() };
  } finally {
    if (context) context.close().catch(() => {});
  }
}

export async function checkRelay(socket) {
  const started = performance.now();
  try {
    const { ms } = await runRelayProbe({
      open: () => request(socket, "selftest:relay_probe", {}),
      answer: (probeId, sdp) => request(socket, "selftest:relay_answer", { probe_id: probeId, sdp }),
      close: (probeId) => request(socket, "selftest:relay_done", { probe_id: probeId }),
      setupMs: RELAY_MS,
      connectMs: RELAY_MS,
    });
    return { status: "ok", code: "ok", ms };
  } catch (error) {
    const code = error.code === "relay_down" ? "relay_down"
      : ["relay_timeout", "relay_failed"].includes(error.code) ? error.code : "relay_error";
    return { status: "fail", code, ms: Math.round(performance.now() - started) };
  }
}

/** Run the self-test now and then on the server's schedule; returns a handle. */
export function startSelfTest(socket, { busy = () => false } = {}) {
  const handle = {
    last: null, running: null, timer: null, stopped: false,
    run: (trigger = "manual") => {
      if (handle.running) return handle.running;
      handle.running = (async () => {
        // The devices one after the other (one camera, one microphone), the relay alongside.
        const relay = checkRelay(socket);
        const camera = await checkCamera();
        const microphone = await checkMicrophone();
        const speaker = await checkSpeaker();
        const results = { camera, microphone, speaker, relay: await relay };
        handle.last = { trigger, results, at: new Date().toISOString(), reported: false };
        const ack = await request(socket, "selftest:report", { trigger, results });
        handle.last.reported = true;
        return ack;
      })().finally(() => { handle.running = null; });
      return handle.running;
    },
    stop: () => {
      handle.stopped = true;
      clearTimeout(handle.timer);
    },
  };
  const schedule = (seconds) => {
    clearTimeout(handle.timer);
    if (!handle.stopped) handle.timer = setTimeout(() => due("hourly"), seconds * 1000);
  };
  const due = async (trigger) => {
    if (handle.stopped) return;
    if (busy() || !socket.connected) {
      handle.timer = setTimeout(() => due(trigger), RETRY_BUSY_MS);
      return;
    }
    try {
      const ack = await handle.run(trigger);
      schedule(ack.next_seconds || FALLBACK_SECONDS);
    } catch (error) {
      console.warn("kiosk self-test:", error);
      schedule(FALLBACK_SECONDS);
    }
  };
  // Start-up: once the socket is connected (the first time only; later connects change nothing).
  if (socket.connected) due("startup");
  else socket.once("connect", () => due("startup"));
  window.__etapalvelu = window.__etapalvelu || {};
  window.__etapalvelu.selfTest = handle;
  return handle;
}
