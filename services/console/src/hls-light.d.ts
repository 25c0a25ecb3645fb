// hls.js ships its light build (no EME, subtitles or CMCD) without its own typings: it has the full build's API.
declare module 'hls.js/light' {
  export * from 'hls.js';
  export { default } from 'hls.js';
}
