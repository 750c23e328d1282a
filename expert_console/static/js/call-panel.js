// The call view of the consoles: whose video goes in which tile, the document camera with
// zoom and pan, remote audio, the quality indicator, and the notices over the tiles when a
// picture is not live (our connection down, the other side left or his media stopped:
// call-notices.js). The media rejoins by itself (CallMedia); after a socket.io reconnect the
// page calls `rejoin()` when flow:sync says the call is still on. Neither touches the
// document panel or the page's own state.

import { onLanguageChange, t } from "/static/common/js/i18n.js";
import { participantListElement, renderParticipantList } from "/static/common/js/participant-list.js";
import { renderTileNotice, tileNotice } from "/static/common/js/call-notices.js";
import { CallMedia, openCamera } from "./call-media.js";
import { mountDocumentPanel } from "./documents.js";
import { DocCamView } from "./doccam-view.js";
import { request } from "./session.js";

const $ = (id) => document.getElementById(id);

/**
 * The media of one console in one call.
 *   tiles: {role: tileElement} — e.g. {customer, expert, interpreter}; `self` for our own.
 *   signLanguage: send our camera tuned for motion (sign-language interpreter).
 */
export class CallPanel {
  constructor({ socket, tiles, doccam = null, signLanguage = false, role, onRefused = null }) {
    this.socket = socket;
    this.onRefused = onRefused; // a rejoin was refused for good (the call has ended)
    this.tiles = tiles;
    this.doccam = doccam;
    this.signLanguage = signLanguage;
    this.role = role;
    this.media = null;
    this.camera = null;
    this.participants = [];
    this.audio = new Map();
    this.documentPanel = null;
    this.call = null;
    const rerender = () => {
      if (this.call) this.renderNotices(); // a closed panel cleared its notices in close()
    };
    socket.on("connect", rerender);
    socket.on("disconnect", rerender);
    onLanguageChange(rerender);
    this.onDoccam = null; // (hasVideo) when the document camera's picture comes or goes
    if (doccam) {
      this.viewer = new DocCamView(doccam.viewport, doccam.video, doccam.output);
      doccam.zoomIn?.addEventListener("click", () => this.viewer.zoom(1.25));
      doccam.zoomOut?.addEventListener("click", () => this.viewer.zoom(0.8));
      doccam.zoomReset?.addEventListener("click", () => this.viewer.reset());
      // Remote zoom: the call's expert steers the document camera to the part of the page he
      // looks at (signaling/in_call/document_view.py); the others' views follow what the frames show.
      if (role === "expert") {
        this.viewer.setRemote((region) => this.call
          ? request(socket, "document_camera:view", { call_id: this.call.id, region })
          : Promise.resolve());
      }
    }
  }

  /** The "take still" button (doccam.still) is there only while a document track is. */
  updateStillButton() {
    const has = Boolean(this.doccam && this.doccam.viewport.classList.contains("has-video"));
    const button = this.doccam && this.doccam.still;
    if (button) button.hidden = !has;
    if (this.doccam) {
      if (has) this.viewer.start();
      else this.viewer.stop();
    }
    this.onDoccam?.(has);
  }

  /** Our microphone (kind "audio") or camera ("video") on or off; returns the new state. */
  setLocalEnabled(kind, enabled) {
    const stream = this.camera;
    if (!stream) return false;
    const tracks = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
    for (const track of tracks) track.enabled = enabled;
    return tracks.length > 0;
  }

  localEnabled(kind) {
    const stream = this.camera;
    if (!stream) return false;
    const tracks = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
    return tracks.some((track) => track.enabled);
  }

  async prepareCamera() {
    if (this.camera) return this.camera;
    try {
      this.camera = await openCamera({ signLanguage: this.signLanguage });
      if (this.tiles.self) this.tiles.self.querySelector("video").srcObject = this.camera;
    } catch (error) {
      console.warn("no camera", error);
    }
    return this.camera;
  }

  stopCamera() {
    if (this.camera) for (const track of this.camera.getTracks()) track.stop();
    this.camera = null;
  }

  async join(call) {
    this.call = call;
    const camera = await this.prepareCamera();
    this.setParticipants(call.participants || []);
    if (!this.media) {
      this.media = new CallMedia(this.socket, camera, {
        signLanguage: this.signLanguage,
        callbacks: {
          onTrack: (info) => this.onTrack(info),
          onTrackRemoved: (info) => this.onTrackRemoved(info),
          onQuality: (level) => this.onQuality(level),
          onJoined: () => this.joined(),
          onState: () => this.renderNotices(),
          onRemoteMedia: () => this.renderNotices(),
          onJoinRefused: (error) => this.onRefused?.(error),
        },
      });
    }
    this.renderNotices();
    await this.media.join(call.id);
  }

  /** After every successful call:join (the first and each rejoin). */
  joined() {
    if (!this.media || !this.call) return;
    this.renderParticipantList(); // now with our own participant id
    const mount = $("document-panel-mount");
    if (mount && !this.documentPanel) {
      this.documentPanel = mountDocumentPanel(mount, {
        socket: this.socket, call: this.call, participantId: this.media.participantId,
        role: this.role,
      });
    }
    this.renderNotices();
  }

  /** Join the same call again (after a socket.io reconnect): camera, documents, page stay. */
  rejoin(reason = "socket_reconnect") {
    if (!this.media) return Promise.resolve();
    return this.media.rejoin(reason).catch((error) => console.warn("rejoin failed", error));
  }

  /** The notices over the tiles: our own link first, then who left, then stopped media. */
  renderNotices() {
    const media = this.media;
    const inCall = Boolean(media && this.call);
    const selfDown = inCall && (!this.socket.connected || media.state === "reconnecting");
    for (const [role, tile] of Object.entries(this.tiles)) {
      if (role === "self" || !tile) continue;
      if (!inCall) {
        renderTileNotice(tile, null);
        continue;
      }
      const participant = this.participants.find((p) => p.role === role && !p.left);
      const pid = (participant && participant.participant_id) || tile.dataset.participant;
      // Our own connection is said once, on the main picture.
      const main = tile.classList.contains("main-tile");
      if (!participant && !main) {
        renderTileNotice(tile, null);
        continue;
      }
      renderTileNotice(tile, selfDown && !main ? null : tileNotice({
        selfDown, participant, role, media: pid ? media.remoteMedia(pid) : null,
      }));
    }
  }

  setParticipants(participants) {
    this.participants = participants;
    this.renderNotices();
    this.renderParticipantList();
    const interpreter = participants.find((p) => p.role === "interpreter" && !p.left);
    if (this.tiles.interpreter) {
      this.tiles.interpreter.hidden = !interpreter;
      if (interpreter) {
        this.tiles.interpreter.querySelector(".tile-label").textContent =
          `${t("common.video.interpreter")}: ${interpreter.name}`;
      }
    }
  }

  /** Everyone in the call, the document camera too, listed under the call's title. */
  renderParticipantList() {
    const list = participantListElement("call-participants", $("call-info"));
    if (!list) return;
    renderParticipantList(list, this.participants, { selfId: this.media?.participantId });
    if (!this.stopLanguage) this.stopLanguage = onLanguageChange(() => this.renderParticipantList());
  }

  roleOf(participantId) {
    const p = this.participants.find((x) => x.participant_id === participantId);
    if (p) return p.role;
    if (!participantId) return "customer";
    if (participantId.startsWith("endpoint-")) return "customer";
    if (participantId.startsWith("doccam-")) return "document_camera";
    return "expert";
  }

  onTrack(info) {
    if (info.kind === "audio") {
      let el = this.audio.get(info.mid);
      if (!el) {
        el = document.createElement("audio");
        el.autoplay = true;
        document.body.append(el);
        this.audio.set(info.mid, el);
      }
      el.srcObject = new MediaStream([info.track]);
      return;
    }
    const role = this.roleOf(info.participantId);
    if (info.source === "document" || role === "document_camera") {
      if (this.doccam) {
        this.doccam.video.srcObject = new MediaStream([info.track]);
        this.doccam.viewport.classList.add("has-video");
        this.updateStillButton();
      }
      return;
    }
    const tile = this.tiles[role];
    if (!tile) return;
    tile.hidden = false;
    tile.querySelector("video").srcObject = new MediaStream([info.track]);
    tile.classList.add("has-video");
    tile.dataset.participant = info.participantId || "";
  }

  onTrackRemoved(info) {
    const audio = this.audio.get(info.mid);
    // After a rejoin the same mid may already carry the new connection's track.
    if (audio && (!audio.srcObject || audio.srcObject.getTracks().includes(info.track))) {
      audio.remove();
      this.audio.delete(info.mid);
    }
    const videos = [...Object.entries(this.tiles)].filter(([role]) => role !== "self")
      .map(([, tile]) => [tile, tile.querySelector("video")]);
    if (this.doccam) videos.push([this.doccam.viewport, this.doccam.video]);
    for (const [box, video] of videos) {
      if (video.srcObject && video.srcObject.getTracks().includes(info.track)) {
        video.srcObject = null;
        box.classList.remove("has-video");
      }
    }
    this.updateStillButton();
  }

  onQuality(level) {
    const el = $("call-quality");
    if (!el) return;
    el.dataset.level = level;
    const text = el.querySelector(".quality-text");
    text.dataset.i18n = `common.quality.${level}`; // so a language switch keeps the level
    text.textContent = t(text.dataset.i18n);
  }

  close({ keepCamera = true } = {}) {
    if (this.media) this.media.close();
    this.media = null;
    this.call = null;
    this.renderNotices();
    if (this.stopLanguage) this.stopLanguage();
    this.stopLanguage = null;
    $("call-participants")?.replaceChildren();
    if (this.documentPanel) this.documentPanel.destroy();
    this.documentPanel = null;
    for (const el of this.audio.values()) el.remove();
    this.audio.clear();
    for (const [role, tile] of Object.entries(this.tiles)) {
      if (role === "self") continue;
      tile.querySelector("video").srcObject = null;
      tile.classList.remove("has-video");
    }
    if (this.doccam) {
      this.doccam.video.srcObject = null;
      this.doccam.viewport.classList.remove("has-video");
      this.viewer.reset();
      this.updateStillButton();
    }
    if (!keepCamera) this.stopCamera();
  }
}
