// One viewer's peer connection on the browser camera's side: answers the viewer's offer
// with the camera's track (the browser encodes it once more for this viewer), and the
// microphone's when the offer has an audio section (Opus, encoded for this viewer too),
// trickles ICE both ways and carries the viewer's "chat" data channel. Where viewers may
// talk back, that audio section is answered sendrecv and the viewer's sound handed over
// (onTalkTrack). The Python camera's counterpart is peers/camera/viewerconnection.py.

import { MessageType } from './protocol.js';

/** A viewer not connected by then is hung up on (the Python camera's default). */
const CONNECT_TIMEOUT_MS = 15_000;

export class ViewerConnection {
  viewerId;
  #pc;
  #signaling;
  #track;
  #audioTrack;
  #audioSender = null;
  #layer;
  #onChat;
  #onClosed;
  #talk;
  #onTalkTrack;
  #chatChannel = null;
  #queue = Promise.resolve(); // signals are applied one at a time, in order
  #connectTimer = null;
  #closed = false;
  #lastOutbound = null; // {framesSent, timestamp} at the last stats() call

  /**
   * audioTrack: the microphone's track, or null (no sound). onChat(peer, text|null): a
   * chat-send on the data channel (null: the channel opened, time for the history);
   * onClosed(peer): the connection ended, for whatever reason. talk(): whether viewers may
   * talk back (`published.talk`); onTalkTrack(peer, track): the viewer's sound arrives on it.
   */
  constructor({
    viewerId, track, audioTrack = null, layer, iceServers, signaling, onChat, onClosed,
    talk = () => false, onTalkTrack = () => {},
  }) {
    this.viewerId = viewerId;
    this.#track = track;
    this.#audioTrack = audioTrack;
    this.#layer = layer;
    this.#signaling = signaling;
    this.#onChat = onChat;
    this.#onClosed = onClosed;
    this.#talk = talk;
    this.#onTalkTrack = onTalkTrack;
    // Only the servers the signaling server handed out: never a default public STUN.
    this.#pc = new RTCPeerConnection({ iceServers });
    this.#pc.onicecandidate = (event) => this.#send({
      type: MessageType.CANDIDATE, candidate: event.candidate ? event.candidate.toJSON() : null,
    });
    this.#pc.ondatachannel = (event) => this.#channelOpened(event.channel);
    this.#pc.ontrack = ({ track }) => {
      if (track.kind === 'audio' && !this.#closed) this.#onTalkTrack(this, track);
    };
    this.#pc.onconnectionstatechange = () => this.#stateChanged();
    this.#connectTimer = setTimeout(() => this.close('not connected in time'), CONNECT_TIMEOUT_MS);
  }

  get connected() {
    return this.#pc.connectionState === 'connected';
  }

  /** Whether this viewer is sent the sound (its offer had an audio section). */
  get sendsSound() {
    return this.#audioSender !== null;
  }

  /** An offer, candidate or hangup from this viewer. */
  handleSignal(message) {
    if (this.#closed) return;
    if (message.type === MessageType.HANGUP) {
      this.close(null);
      return;
    }
    this.#queue = this.#queue.then(() => this.#apply(message)).catch((error) => {
      console.warn(`peercam: viewer ${this.viewerId}:`, error);
      this.close(message.type === MessageType.OFFER
        ? 'the camera could not answer your offer: its SDP is not a usable video offer'
        : 'the camera could not go on with this connection');
    });
  }

  /** Send a chat, chat-history or chat-notice on this viewer's data channel; false if it is not open. */
  sendChat(message) {
    if (this.#chatChannel?.readyState !== 'open') return false;
    this.#chatChannel.send(JSON.stringify(message));
    return true;
  }

  /** CameraViewerStats (peercam/shared/protocol.py) from this connection's getStats(), and its frame rate. */
  async stats() {
    const report = { id: this.viewerId, layer: this.#layer.name, quality: 'auto', frames_sent: 0 };
    let fps = 0;
    let encode = { frames: 0, seconds: 0, keyframes: 0 };
    if (this.#closed) return { report, fps, encode };
    for (const item of (await this.#pc.getStats()).values()) {
      if (item.type === 'outbound-rtp' && item.kind === 'video') {
        report.frames_sent = item.framesSent ?? 0;
        report.keyframe_requests = (item.pliCount ?? 0) + (item.firCount ?? 0);
        fps = item.framesPerSecond ?? this.#rate(item);
        encode = {
          frames: item.framesEncoded ?? 0, seconds: item.totalEncodeTime ?? 0, keyframes: item.keyFramesEncoded ?? 0,
        };
      } else if (item.type === 'outbound-rtp' && item.kind === 'audio') {
        report.audio_packets_sent = item.packetsSent ?? 0;
      } else if (item.type === 'remote-inbound-rtp' && item.kind === 'video') {
        if (item.roundTripTime !== undefined) report.rtt_ms = Math.round(item.roundTripTime * 10000) / 10;
        report.packets_lost = Math.max(0, item.packetsLost ?? 0);
        if (item.fractionLost !== undefined) report.fraction_lost = Math.min(1, Math.max(0, item.fractionLost));
      }
    }
    return { report, fps, encode };
  }

  /** Tear down; `reason` (words) goes to the viewer as a hangup unless it is null. */
  close(reason) {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#connectTimer);
    if (reason !== null) this.#send({ type: MessageType.HANGUP, reason });
    this.#pc.close();
    this.#onClosed(this);
  }

  async #apply(message) {
    if (message.type === MessageType.OFFER) {
      await this.#answer(message.sdp);
    } else if (message.type === MessageType.CANDIDATE) {
      // No candidate: the viewer has sent them all.
      await (message.candidate ? this.#pc.addIceCandidate(message.candidate) : this.#pc.addIceCandidate());
    }
  }

  async #answer(sdp) {
    await this.#pc.setRemoteDescription({ type: 'offer', sdp });
    // addTrack takes the offer's recvonly video transceiver; the answer makes it sendonly.
    const sender = this.#pc.addTrack(this.#track);
    const transceiver = this.#pc.getTransceivers().find((t) => t.sender === sender);
    if (!transceiver) throw new Error('the offer has no video section');
    // VP8, what the stream announces, and nothing else: viewers decode what `info` says.
    const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter(
      (codec) => /^video\/(vp8|rtx)$/i.test(codec.mimeType));
    transceiver.setCodecPreferences(vp8);
    if (this.#audioTrack !== null) await this.#addSound();
    await this.#pc.setLocalDescription(await this.#pc.createAnswer());
    // Keep the published size: under CPU load the browser drops frames rather than lines.
    const parameters = sender.getParameters();
    parameters.degradationPreference = 'maintain-resolution';
    await sender.setParameters(parameters).catch(() => {});
    if (this.#closed) return;
    this.#send({ type: MessageType.ANSWER, sdp: this.#pc.localDescription.sdp });
  }

  /** The microphone on the offer's audio section, if it has one: a viewer that plays no
   * sound offers none, and an answer cannot add one. Sendrecv where viewers may talk back
   * (without sound, the section's own recvonly answer takes the talk alone). */
  async #addSound() {
    const sound = this.#pc.getTransceivers().find(
      (t) => t.receiver.track.kind === 'audio' && t.mid !== null && t.sender.track === null);
    if (!sound) return;
    sound.direction = this.#talk() ? 'sendrecv' : 'sendonly';
    await sound.sender.replaceTrack(this.#audioTrack);
    // Opus, what the stream announces, and nothing else.
    sound.setCodecPreferences(RTCRtpSender.getCapabilities('audio').codecs.filter(
      (codec) => /^audio\/opus$/i.test(codec.mimeType)));
    this.#audioSender = sound.sender;
  }

  #channelOpened(channel) {
    if (channel.label !== 'chat') return;
    this.#chatChannel = channel;
    channel.onopen = () => this.#onChat(this, null);
    if (channel.readyState === 'open') this.#onChat(this, null);
    channel.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        this.sendChat({ type: MessageType.CHAT_NOTICE, reason: 'not JSON' });
        return;
      }
      if (message?.type === MessageType.CHAT_SEND && typeof message.text === 'string') {
        this.#onChat(this, message.text);
      }
    };
  }

  #stateChanged() {
    const state = this.#pc.connectionState;
    if (state === 'connected') {
      clearTimeout(this.#connectTimer);
      const { name, width, height } = this.#layer;
      this.#send({ type: MessageType.LAYER, layer: name, width, height, reason: '' });
    } else if (state === 'failed' || state === 'closed') {
      this.close(null);
    }
  }

  #rate({ framesSent = 0, timestamp }) {
    const last = this.#lastOutbound;
    this.#lastOutbound = { framesSent, timestamp };
    if (last === null || timestamp <= last.timestamp) return 0;
    return ((framesSent - last.framesSent) * 1000) / (timestamp - last.timestamp);
  }

  #send(message) {
    this.#signaling.send({ ...message, to: this.viewerId });
  }
}
