import { start, run, type Running } from './processes.js';

/**
 * FFmpeg / ffprobe / rtmpdump / GStreamer invocations from the matrix in docs/INTEROP.md §10, headless, bounded.
 */

export interface PublishOptions {
  seconds?: number;
  size?: string;
  rate?: number;
  gop?: number;
  /** Extra args placed before the output (e.g. -output_ts_offset). */
  extra?: string[];
  audio?: boolean;
  video?: boolean;
}

/** FFmpeg publishes an H.264/AAC test pattern in real time. */
export function ffmpegPublish(url: string, o: PublishOptions = {}): Running {
  const seconds = o.seconds ?? 30;
  const video = o.video ?? true;
  const audio = o.audio ?? true;
  const args = ['-hide_banner', '-loglevel', 'error', '-re'];
  if (video) args.push('-f', 'lavfi', '-i', `testsrc=size=${o.size ?? '320x240'}:rate=${o.rate ?? 30}`);
  if (audio) args.push('-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=44100');
  if (video)
    args.push(
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-g',
      String(o.gop ?? 30),
      '-pix_fmt',
      'yuv420p',
    );
  if (audio) args.push('-c:a', 'aac', '-b:a', '64k');
  args.push('-t', String(seconds), ...(o.extra ?? []), '-f', 'flv', url);
  return start('ffmpeg', args, { timeoutMs: (seconds + 30) * 1000 });
}

/** FFmpeg plays and decodes video for `seconds`; returns the decoded frame count from -progress. */
export async function ffmpegCountFrames(
  url: string,
  seconds: number,
  extraInput: string[] = [],
): Promise<{ frames: number; code: number | null; stderr: string }> {
  const r = await run(
    'ffmpeg',
    [
      '-hide_banner',
      '-v',
      'error',
      '-rw_timeout',
      '8000000',
      ...extraInput,
      '-i',
      url,
      '-t',
      String(seconds),
      '-map',
      '0:v:0',
      '-f',
      'null',
      '-',
      '-progress',
      'pipe:1',
    ],
    { timeoutMs: (seconds + 25) * 1000 },
  );
  const frames = [...r.stdout.matchAll(/^frame=(\d+)/gm)].map((m) => Number(m[1]));
  return { frames: frames.at(-1) ?? 0, code: r.code, stderr: r.stderr };
}

/**
 * ffprobe reads `seconds` of a live stream and counts what one stream carries: decoded video frames (`-count_frames`)
 * or audio packets (`-count_packets`). Returns the codec name and the count.
 */
async function ffprobeLive(
  url: string,
  seconds: number,
  select: 'v:0' | 'a:0',
  count: 'frames' | 'packets',
): Promise<{ codec: string; count: number; stderr: string }> {
  const entry = count === 'frames' ? 'nb_read_frames' : 'nb_read_packets';
  const r = await run(
    'ffprobe',
    [
      '-v',
      'error',
      '-rw_timeout',
      '8000000',
      '-read_intervals',
      `%+${seconds}`,
      `-count_${count}`,
      '-select_streams',
      select,
      '-show_entries',
      `stream=codec_name,${entry}`,
      '-of',
      'csv=p=0',
      url,
    ],
    { timeoutMs: (seconds + 25) * 1000 },
  );
  const [codec = '', n = '0'] = r.stdout.trim().split('\n')[0]!.split(',');
  return { codec, count: Number(n) || 0, stderr: r.stderr };
}

/** ffprobe reads `seconds` of the stream and counts video frames. */
export async function ffprobeCount(
  url: string,
  seconds: number,
): Promise<{ codec: string; frames: number; stderr: string }> {
  const r = await ffprobeLive(url, seconds, 'v:0', 'frames');
  return { codec: r.codec, frames: r.count, stderr: r.stderr };
}

/** ffprobe counts video frames in a local file. */
export async function ffprobeFileFrames(path: string, format?: string): Promise<number> {
  const r = await run(
    'ffprobe',
    [
      '-v',
      'error',
      ...(format ? ['-f', format] : []),
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=nb_read_frames',
      '-of',
      'csv=p=0',
      path,
    ],
    { timeoutMs: 60_000 },
  );
  return Number(r.stdout.trim().split('\n')[0]) || 0;
}

/** GStreamer rtmp2src decodes video for ~`seconds`; returns the count of decoded video buffers (R6). */
export async function gstCountFrames(
  url: string,
  seconds: number,
): Promise<{ frames: number; stderr: string; code: number | null }> {
  const r = await run(
    'timeout',
    [
      String(seconds),
      'gst-launch-1.0',
      '-v',
      'rtmp2src',
      `location=${url}`,
      '!',
      'queue',
      '!',
      'decodebin',
      '!',
      'video/x-raw',
      '!',
      'fakesink',
      'silent=false',
      'sync=false',
    ],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const frames = (r.stdout.match(/chain/g) ?? []).length;
  return { frames, stderr: r.stderr, code: r.code };
}

/** ffprobe reads `seconds` of the stream and counts audio packets. */
export async function ffprobeAudioPackets(
  url: string,
  seconds: number,
): Promise<{ codec: string; packets: number; stderr: string }> {
  const r = await ffprobeLive(url, seconds, 'a:0', 'packets');
  return { codec: r.codec, packets: r.count, stderr: r.stderr };
}
