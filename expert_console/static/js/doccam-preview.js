// The clerk's live preview of the office's document camera in a call (signaling/in_call/call_preview.py):
// he lays the customer's page under the camera and sees what the expert will see before he
// takes the still. Receive only: one RTCPeerConnection to the relay, which sends the call's
// `document` source and nothing else (no faces, no voices); nothing of ours is sent.
//
//   const preview = new DocCamPreview(socket, callId, videoElement, { onState });
//   await preview.start();   // onState("waiting" | "showing" | "lost")
//   await preview.stop();
//
// The relay is the offerer as for a participant: `call:preview` answers with its offer,
// RelayClient answers with `call:preview_answer`, renegotiations (the camera joins later,
// reconnects) arrive as `call:offer` pushes for this call.

import { RelayClient } from "/static/common/js/relay-client.js";
import { request } from "./session.js";

export class DocCamPreview {
  constructor(socket, callId, video, { onState = () => {} } = {}) {
    this.socket = socket;
    this.callId = callId;
    this.video = video;
    this.onState = onState;
    this.client = null;
    this.onOffer = ({ call_id: callId, offer }) => {
      if (callId === this.callId && this.client) this.client.handleOffer(offer).catch(() => this.lost());
    };
  }

  async start() {
    const client = new RelayClient({
      request: async (name, payload) => {
        if (name === "join") {
          const ack = await request(this.socket, "call:preview", { call_id: this.callId });
          client.iceServers = ack.ice_servers || [];
          return ack;
        }
        if (name === "answer") {
          return request(this.socket, "call:preview_answer", { call_id: this.callId, sdp: payload.sdp });
        }
        throw new Error(`the preview does not ${name}`);
      },
    });
    this.client = client;
    client.ontrack = (track, meta) => {
      if (meta.source !== "document" || track.kind !== "video") return;
      this.video.srcObject = new MediaStream([track]);
      this.video.play().catch(() => {});
      this.onState("showing");
    };
    client.ontrackremoved = (_track, meta) => {
      if (meta && meta.source === "document") {
        this.video.srcObject = null;
        this.onState("waiting");
      }
    };
    client.onconnectionstatechange = (state) => {
      if (state === "failed" || state === "closed") this.lost();
    };
    this.socket.on("call:offer", this.onOffer);
    this.onState("waiting");
    await client.join({});
    window.__etapalvelu = window.__etapalvelu || {};
    window.__etapalvelu.previewPc = client.pc;
  }

  lost() {
    if (!this.client) return;
    this.onState("lost");
  }

  async stop() {
    this.socket.off("call:offer", this.onOffer);
    const client = this.client;
    this.client = null;
    this.video.srcObject = null;
    if (client) client.close();
    try {
      await request(this.socket, "call:preview_stop", { call_id: this.callId });
    } catch {
      /* the call may have ended meanwhile: nothing to stop then */
    }
  }
}
