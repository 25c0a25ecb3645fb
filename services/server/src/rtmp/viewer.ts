import type { HubViewer } from '@rtmp-relay/hub';
import { Command, Status, statusInfo, streamBegin, streamEof, type RtmpConnection } from '@rtmp-relay/rtmp';

/** A player's NetStream as the hub sees it: writes go straight to the socket, with no per-viewer copies. */
export class RtmpViewer implements HubViewer {
  constructor(
    readonly id: string,
    readonly streamId: number,
    readonly streamName: string,
    private readonly connection: RtmpConnection,
    private readonly fourCcs: ReadonlySet<string>,
    private readonly onDisconnect: (reason: string) => void,
  ) {}

  acceptsFourCc(fourCc: string): boolean {
    return this.fourCcs.has(fourCc) || this.fourCcs.has('*');
  }

  write(chunks: Buffer): void {
    this.connection.writeRaw(chunks);
  }

  backlogBytes(): number {
    return this.connection.socket.writableLength;
  }

  cork(): void {
    this.connection.socket.cork();
  }

  uncork(): void {
    this.connection.socket.uncork();
  }

  disconnect(reason: string): void {
    this.onDisconnect(reason);
  }

  /** End of live: StreamEOF (GStreamer), UnpublishNotify (FFmpeg) and Play.Stop (librtmp) together. */
  streamEnded(): void {
    const c = this.connection;
    c.send(streamEof(this.streamId));
    c.sendCommand(
      this.streamId,
      Command.OnStatus,
      0,
      null,
      statusInfo('status', Status.PlayUnpublishNotify, `${this.streamName} is now unpublished.`),
    );
    c.sendCommand(
      this.streamId,
      Command.OnStatus,
      0,
      null,
      statusInfo('status', Status.PlayStop, `Stopped playing ${this.streamName}.`),
    );
  }

  streamRestarted(): void {
    this.connection.send(streamBegin(this.streamId));
    this.connection.sendCommand(
      this.streamId,
      Command.OnStatus,
      0,
      null,
      statusInfo('status', Status.PlayPublishNotify, `${this.streamName} is now published.`),
    );
  }
}
