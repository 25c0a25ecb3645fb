import { createHash } from 'node:crypto';

/**
 * Stream names are often the credential (OBS "stream key"), so logs at info never carry them: the app stays readable
 * and the name becomes a short stable hash, enough to correlate lines of one stream without revealing it.
 * `live/8c1f02ab`-style values are what `streamLabel()` prints; the same key always gives the same label.
 */
const LABEL_HASH_CHARS = 8;

export function streamLabel(key: string): string {
  const slash = key.indexOf('/');
  const app = slash < 0 ? '' : key.slice(0, slash);
  const digest = createHash('sha256').update(key).digest('hex').slice(0, LABEL_HASH_CHARS);
  return `${app.slice(0, 64)}/~${digest}`;
}
