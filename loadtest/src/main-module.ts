import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** True when the module at `metaUrl` is the script node was started with (not merely imported). */
export function isMainModule(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return metaUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}
