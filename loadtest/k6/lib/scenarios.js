// Scenario and threshold settings of the k6 suites, from environment variables. Plain JavaScript with no k6
// imports (the Node tests import it too).
//
//   K6_SCENARIO  smoke | ramp | soak                     (default smoke)
//   VIEWERS      viewers at the top of a ramp, or during a soak (default 50; smoke: 2)
//   SESSION      how long one viewer watches before it leaves and a new one joins, seconds (default 20)
//   DURATION     smoke/soak length (defaults: smoke 30s, soak 30m)
//   RAMP, HOLD   ramp: time to reach VIEWERS, time at VIEWERS (defaults 2m, 3m)
//   RATE         API requests per second at the top of a ramp / during a soak (api.js, default 50)
//
// (The JSDoc types name k6's option types for the type-check only; nothing is imported at run time.)

/** @typedef {{ [name: string]: import('k6/options').Scenario }} Scenarios */

/**
 * @param {Record<string, string | undefined>} env
 * @param {string} name
 * @param {number} fallback
 */
export function envNumber(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got '${raw}'`);
  return n;
}

/**
 * @param {Record<string, string | undefined>} env
 * @returns {'smoke' | 'ramp' | 'soak'}
 */
export function scenarioName(env) {
  const name = (env.K6_SCENARIO || 'smoke').toLowerCase();
  if (name !== 'smoke' && name !== 'ramp' && name !== 'soak')
    throw new Error(`K6_SCENARIO must be smoke, ramp or soak, got '${name}'`);
  return name;
}

/**
 * One k6 scenario of viewers: each iteration of a VU is one viewer session of SESSION seconds.
 * @param {Record<string, string | undefined>} env
 * @param {string} exec  the exported function the VUs run
 * @returns {Scenarios}
 */
export function viewerScenarios(env, exec) {
  const name = scenarioName(env);
  const session = envNumber(env, 'SESSION', 20);
  // A VU finishing its session when the scenario ends is given the session to finish.
  const gracefulStop = `${Math.ceil(session + 10)}s`;
  if (name === 'smoke') {
    return {
      [name]: {
        executor: 'constant-vus',
        exec,
        vus: envNumber(env, 'VIEWERS', 2),
        duration: env.DURATION || '30s',
        gracefulStop,
      },
    };
  }
  if (name === 'ramp') {
    const viewers = envNumber(env, 'VIEWERS', 50);
    return {
      [name]: {
        executor: 'ramping-vus',
        exec,
        startVUs: 0,
        stages: [
          { duration: env.RAMP || '2m', target: viewers },
          { duration: env.HOLD || '3m', target: viewers },
          { duration: '30s', target: 0 },
        ],
        gracefulRampDown: gracefulStop,
        gracefulStop,
      },
    };
  }
  return {
    [name]: {
      executor: 'constant-vus',
      exec,
      vus: envNumber(env, 'VIEWERS', 50),
      duration: env.DURATION || '30m',
      gracefulStop,
    },
  };
}

/**
 * API load: an arrival rate of requests (each iteration is one request mix).
 * @param {Record<string, string | undefined>} env
 * @param {string} exec
 * @returns {Scenarios}
 */
export function apiScenarios(env, exec) {
  const name = scenarioName(env);
  const rate = envNumber(env, 'RATE', 50);
  const vus = Math.max(5, Math.ceil(rate / 5));
  if (name === 'smoke') {
    return { [name]: { executor: 'constant-vus', exec, vus: 1, duration: env.DURATION || '30s' } };
  }
  if (name === 'ramp') {
    return {
      [name]: {
        executor: 'ramping-arrival-rate',
        exec,
        startRate: 1,
        timeUnit: '1s',
        preAllocatedVUs: vus,
        maxVUs: vus * 4,
        stages: [
          { duration: env.RAMP || '2m', target: rate },
          { duration: env.HOLD || '3m', target: rate },
        ],
      },
    };
  }
  return {
    [name]: {
      executor: 'constant-arrival-rate',
      exec,
      rate,
      timeUnit: '1s',
      duration: env.DURATION || '30m',
      preAllocatedVUs: vus,
      maxVUs: vus * 4,
    },
  };
}
