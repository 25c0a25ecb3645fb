/**
 * A worker thread holding a share of the load generator's viewers (`--workers N`): a ViewerPool driven by the main
 * thread's requests ({seq, op, args} -> {seq, result}). Send times and the window bounds come through shared memory.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { SharedTimestampWindow, ViewerPool, type PoolConfig } from './viewer-pool.js';

export interface WorkerInit {
  config: PoolConfig;
  bounds: Float64Array;
  sent: Float64Array;
  mainTimeOrigin: number;
}

export type WorkerRequest =
  | { seq: number; op: 'launch'; ids: number[] }
  | { seq: number; op: 'tick' | 'status' | 'windowStart' | 'windowEnd' | 'stop' }
  | {
      seq: number;
      op: 'measure';
      args: { expected: number; byTimestamp: boolean; windowStart: number; windowEnd: number };
    };

const ELD_RESOLUTION_MS = 10;

if (parentPort) {
  const port = parentPort;
  const init = workerData as WorkerInit;
  const pool = new ViewerPool(
    init.config,
    new SharedTimestampWindow(init.bounds),
    init.sent,
    performance.timeOrigin - init.mainTimeOrigin,
  );
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  let elu0 = performance.eventLoopUtilization();
  port.on('message', (req: WorkerRequest) => {
    let result: unknown;
    switch (req.op) {
      case 'launch':
        pool.launch(req.ids);
        break;
      case 'tick':
        result = pool.tick();
        break;
      case 'status':
        result = pool.status();
        break;
      case 'windowStart':
        eld.enable();
        elu0 = performance.eventLoopUtilization();
        result = pool.windowStart();
        break;
      case 'windowEnd':
        eld.disable();
        result = {
          ...pool.windowEnd(),
          eldP99Ms: Math.max(0, eld.percentile(99) / 1e6 - ELD_RESOLUTION_MS),
          eldMaxMs: Math.max(0, eld.max / 1e6 - ELD_RESOLUTION_MS),
          elu: performance.eventLoopUtilization(elu0).utilization,
        };
        break;
      case 'measure':
        result = pool.measure(req.args);
        break;
      case 'stop':
        pool.stop();
        break;
    }
    port.postMessage({ seq: req.seq, result });
  });
}
