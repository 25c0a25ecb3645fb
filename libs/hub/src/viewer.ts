/**
 * What the hub needs from a viewer connection (RTMP, HTTP-FLV or WebSocket-FLV). Deliberately tiny: the hub
 * keeps per-viewer state in its own small record, and never allocates per viewer per message.
 */
export interface HubViewer {
  readonly id: string;
  /** Message stream id the viewer plays on (selects the shared chunk variant; ignored for FLV viewers). */
  readonly streamId: number;
  /** Wire format: RTMP chunks (default) or FLV tags (HTTP-FLV, WebSocket-FLV). Both are built once per message. */
  readonly format?: 'rtmp' | 'flv';
  /** Receives Enhanced RTMP frames of this FourCC (negotiated in connect's fourCcList). */
  acceptsFourCc(fourCc: string): boolean;
  /** Writes pre-serialized bytes (RTMP chunks or an FLV tag); the same Buffer goes to every viewer: never modify it. */
  write(bytes: Buffer): void;
  /** Bytes accepted by write() but not yet handed to the kernel. */
  backlogBytes(): number;
  cork(): void;
  uncork(): void;
  /** Ends the viewer's connection; the hub has already removed it. */
  disconnect(reason: string): void;
  /** The stream ended (publisher gone past the grace period): send the player its end-of-stream signals. */
  streamEnded(): void;
  /** A publisher (re)started the stream after streamEnded(). */
  streamRestarted(): void;
}

/** Per-viewer hub state: a handful of fields, no timers, no buffers. */
export interface ViewerSlot {
  readonly viewer: HubViewer;
  /** Monotonic ms when the viewer's backlog was last seen empty. */
  lastDrainedAt: number;
  /** Past the soft bound: skip non-key video until a keyframe finds the backlog small again. */
  dropping: boolean;
  /** Paused or just unpaused / receiveVideo(true): wait for the next keyframe before sending video. */
  awaitingKeyframe: boolean;
  audio: boolean;
  video: boolean;
  paused: boolean;
  /** Bytes of the join burst (cached headers + GOP) still allowed on top of the backlog bounds until it drains. */
  joinAllowance: number;
  /** Corked by the current batch window (so exactly the viewers corked get uncorked). */
  corked: boolean;
}
