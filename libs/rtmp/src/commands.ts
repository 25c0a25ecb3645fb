import { amfProperties, type AmfObject, type AmfValue } from './amf.js';

/** NetConnection / NetStream command names and status codes (RTMP spec 7.2, docs/INTEROP.md §5). */
export const Command = {
  Connect: 'connect',
  Call: 'call',
  Close: 'close',
  CreateStream: 'createStream',
  ReleaseStream: 'releaseStream',
  FCPublish: 'FCPublish',
  FCUnpublish: 'FCUnpublish',
  FCSubscribe: 'FCSubscribe',
  FCUnsubscribe: 'FCUnsubscribe',
  Publish: 'publish',
  Play: 'play',
  Play2: 'play2',
  Pause: 'pause',
  Seek: 'seek',
  DeleteStream: 'deleteStream',
  CloseStream: 'closeStream',
  ReceiveAudio: 'receiveAudio',
  ReceiveVideo: 'receiveVideo',
  GetStreamLength: 'getStreamLength',
  CheckBandwidth: '_checkbw',
  Result: '_result',
  Error: '_error',
  OnStatus: 'onStatus',
  OnBWDone: 'onBWDone',
  OnFCPublish: 'onFCPublish',
  OnFCUnpublish: 'onFCUnpublish',
} as const;

export const Status = {
  ConnectSuccess: 'NetConnection.Connect.Success',
  ConnectRejected: 'NetConnection.Connect.Rejected',
  ConnectClosed: 'NetConnection.Connect.Closed',
  /** E-RTMP v2: the server asks the client to reconnect (to `tcUrl` when given); sent only to capsEx & Reconnect. */
  ConnectReconnectRequest: 'NetConnection.Connect.ReconnectRequest',
  PublishStart: 'NetStream.Publish.Start',
  PublishBadName: 'NetStream.Publish.BadName',
  PublishDenied: 'NetStream.Publish.Denied',
  UnpublishSuccess: 'NetStream.Unpublish.Success',
  PlayReset: 'NetStream.Play.Reset',
  PlayStart: 'NetStream.Play.Start',
  PlayStop: 'NetStream.Play.Stop',
  PlayStreamNotFound: 'NetStream.Play.StreamNotFound',
  PlayFailed: 'NetStream.Play.Failed',
  PlayPublishNotify: 'NetStream.Play.PublishNotify',
  PlayUnpublishNotify: 'NetStream.Play.UnpublishNotify',
  PauseNotify: 'NetStream.Pause.Notify',
  UnpauseNotify: 'NetStream.Unpause.Notify',
  SeekNotify: 'NetStream.Seek.Notify',
} as const;

export type StatusLevel = 'status' | 'error' | 'warning';

export function statusInfo(level: StatusLevel, code: string, description: string, extra: AmfObject = {}): AmfObject {
  return { level, code, description, ...extra };
}

/** Enhanced RTMP capsEx bits (E-RTMP v2 "Enhancing NetConnection connect Command"). */
export const CapsEx = { Reconnect: 0x01, Multitrack: 0x02, ModEx: 0x04, TimestampNanoOffset: 0x08 } as const;

/** What the relay can pass through untouched: multitrack, ModEx and nanosecond offsets (it never decodes frames). */
export const RELAY_CAPS_EX = CapsEx.Multitrack | CapsEx.ModEx | CapsEx.TimestampNanoOffset;

export interface ConnectInfo {
  app: string;
  tcUrl: string | undefined;
  flashVer: string | undefined;
  objectEncoding: number;
  /** Enhanced RTMP FourCCs the client can receive ('*' = any); empty for legacy clients. */
  fourCcList: string[];
  capsEx: number;
  /** The raw command object, for hooks. */
  raw: AmfObject;
}

/** Property bag of an object, ECMA array or typed object (connect objects arrive in any of these forms). */
function asObject(v: AmfValue): AmfObject | undefined {
  return amfProperties(v);
}

const asString = (v: AmfValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
const asNumber = (v: AmfValue | undefined): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

/** Reads a connect command object, including E-RTMP fourCcList / videoFourCcInfoMap / audioFourCcInfoMap. */
export function parseConnect(commandObject: AmfValue): ConnectInfo {
  const obj = asObject(commandObject) ?? {};
  const fourCcs = new Set<string>();
  const list = obj['fourCcList'];
  if (Array.isArray(list)) for (const f of list) if (typeof f === 'string') fourCcs.add(f);
  for (const mapKey of ['videoFourCcInfoMap', 'audioFourCcInfoMap']) {
    const map = asObject(obj[mapKey] ?? null);
    if (map) for (const k of Object.keys(map)) fourCcs.add(k);
  }
  return {
    app: (asString(obj['app']) ?? '').replace(/\/+$/, ''),
    tcUrl: asString(obj['tcUrl']),
    flashVer: asString(obj['flashVer']),
    objectEncoding: asNumber(obj['objectEncoding']) ?? 0,
    fourCcList: [...fourCcs],
    capsEx: asNumber(obj['capsEx']) ?? 0,
    raw: obj,
  };
}

/** The `_result` properties and information objects for an accepted connect (E-RTMP capabilities echoed). */
export function connectResult(info: ConnectInfo): [AmfObject, AmfObject] {
  const properties: AmfObject = { fmsVer: 'FMS/3,0,1,123', capabilities: 31, mode: 1 };
  if (info.fourCcList.length > 0 || info.capsEx !== 0) {
    properties['fourCcList'] = info.fourCcList;
    properties['capsEx'] = info.capsEx & RELAY_CAPS_EX;
  }
  const information = statusInfo('status', Status.ConnectSuccess, 'Connection succeeded.', {
    objectEncoding: info.objectEncoding,
  });
  return [properties, information];
}

/** Splits `name?query` as sent in publish/play (tokens travel in the query). */
export function splitStreamName(raw: string): { name: string; query: URLSearchParams } {
  const q = raw.indexOf('?');
  return q < 0
    ? { name: raw, query: new URLSearchParams() }
    : { name: raw.slice(0, q), query: new URLSearchParams(raw.slice(q + 1)) };
}
