import { MessageType, NETCONNECTION_STREAM_ID, UserControlEvent } from './constants.js';
import { RtmpProtocolError } from './errors.js';
import type { RtmpMessage } from './message.js';

/** Builders and parsers for protocol control (types 1-6) and user control (type 4) messages. */

function control(type: number, payload: Buffer): RtmpMessage {
  return { type, streamId: NETCONNECTION_STREAM_ID, timestamp: 0, payload };
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

export const setChunkSize = (size: number): RtmpMessage => control(MessageType.SetChunkSize, u32(size));
export const abortMessage = (csid: number): RtmpMessage => control(MessageType.Abort, u32(csid));
export const acknowledgement = (bytesReceived: number): RtmpMessage =>
  control(MessageType.Acknowledgement, u32(bytesReceived));
export const windowAckSize = (size: number): RtmpMessage => control(MessageType.WindowAckSize, u32(size));

export function setPeerBandwidth(size: number, limitType: number): RtmpMessage {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt32BE(size >>> 0, 0);
  b[4] = limitType;
  return control(MessageType.SetPeerBandwidth, b);
}

export function userControl(event: number, ...values: number[]): RtmpMessage {
  const b = Buffer.allocUnsafe(2 + 4 * values.length);
  b.writeUInt16BE(event, 0);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 2 + 4 * i));
  return control(MessageType.UserControl, b);
}

export const streamBegin = (streamId: number): RtmpMessage => userControl(UserControlEvent.StreamBegin, streamId);
export const streamEof = (streamId: number): RtmpMessage => userControl(UserControlEvent.StreamEOF, streamId);
export const pingRequest = (time: number): RtmpMessage => userControl(UserControlEvent.PingRequest, time);
export const pingResponse = (time: number): RtmpMessage => userControl(UserControlEvent.PingResponse, time);
export const setBufferLength = (streamId: number, ms: number): RtmpMessage =>
  userControl(UserControlEvent.SetBufferLength, streamId, ms);

/** Reads the u32 that types 1, 2, 3 and 5 carry. */
export function readControlU32(msg: RtmpMessage): number {
  if (msg.payload.length < 4) {
    throw new RtmpProtocolError('bad_control_message', `control message type ${msg.type} shorter than 4 bytes`);
  }
  return msg.payload.readUInt32BE(0);
}

export interface UserControlEventData {
  event: number;
  /** First u32 argument (stream id or timestamp), if present. */
  value?: number;
  /** Second u32 argument (SetBufferLength's milliseconds), if present. */
  value2?: number;
}

export function parseUserControl(msg: RtmpMessage): UserControlEventData {
  const p = msg.payload;
  if (p.length < 2) throw new RtmpProtocolError('bad_control_message', 'user control message shorter than 2 bytes');
  const out: UserControlEventData = { event: p.readUInt16BE(0) };
  if (p.length >= 6) out.value = p.readUInt32BE(2);
  if (p.length >= 10) out.value2 = p.readUInt32BE(6);
  return out;
}
