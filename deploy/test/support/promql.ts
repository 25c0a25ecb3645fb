/**
 * Metric names in PromQL (dashboard panels, alert rules, prometheus-adapter rules) and in a Prometheus exposition
 * (a live /metrics scrape), so tests can check that every query names only what the nodes export.
 */

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'atan2',
]);
/** Aggregation operators: `sum by (x) (...)` puts the grouping between the name and its parenthesis. */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);

export interface Exposition {
  /** Sample names (with _bucket/_sum/_count for histograms), including declared families without samples yet. */
  names: Set<string>;
  /** Label names seen on each sample name. */
  labels: Map<string, Set<string>>;
  /** Every sample value seen for each sample name (all series, all scrapes). */
  values?: Map<string, number[]>;
}

export function parseExposition(text: string, into: Exposition = { names: new Set(), labels: new Map() }): Exposition {
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      into.names.add(name);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) into.names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) into.names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!sample) continue;
    const name = sample[1]!;
    into.names.add(name);
    into.values ??= new Map();
    into.values.set(name, [...(into.values.get(name) ?? []), Number(sample[3])]);
    let set = into.labels.get(name);
    if (!set) into.labels.set(name, (set = new Set()));
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="/g)) set.add(m[1]!);
  }
  return into;
}

export interface Selector {
  metric: string | undefined;
  labels: string[];
}

/** Metric selectors of a PromQL expression: each metric name with the label names of its matchers. */
export function promqlSelectors(expr: string): Selector[] {
  let s = expr
    .replace(/\$\{[^}]*\}|\$__\w+|\$\w+/g, 'VAR') // Grafana variables (outside strings)
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' $1 ');
  const out: Selector[] = [];
  // Label matchers: {a="x", b=~"y"} possibly after a metric name.
  s = s.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_all, metric: string | undefined, body: string) => {
    const labels = [
      ...body
        .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
        .matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g),
    ].map((m) => m[1]!);
    const nameMatcher = /__name__\s*=\s*"([^"]+)"/.exec(body);
    const name = metric && !KEYWORDS.has(metric) ? metric : nameMatcher?.[1];
    out.push({ metric: name, labels: labels.filter((l) => l !== '__name__') });
    return metric && KEYWORDS.has(metric) ? ` ${metric} ` : ' ';
  });
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ');
  for (const m of s.matchAll(/(?<![\w.:])([a-zA-Z_:][\w:]*)(?=\s*(\()?)/g)) {
    const word = m[1]!;
    if (m[2] === '(' || KEYWORDS.has(word) || AGGREGATIONS.has(word) || word === 'VAR') continue;
    out.push({ metric: word, labels: [] });
  }
  return out;
}

export function promqlMetricNames(expr: string): string[] {
  return [
    ...new Set(
      promqlSelectors(expr)
        .map((s) => s.metric)
        .filter((m): m is string => !!m),
    ),
  ];
}

/** PromQL of a Grafana dashboard: panel targets and query variables (label_values(expr, label) -> expr). */
export function dashboardQueries(dashboard: any): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    const lv = /^label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)$/.exec(String(q).trim());
    out.push({ where: `variable ${v.name}`, expr: lv ? lv[1]! : String(q) });
  }
  return out;
}
