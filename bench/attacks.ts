// Bounded-API benchmark (the "bounded API" issue): the worst event-loop delay of the server while
// each class of hostile input runs against it, as the server's own perf_hooks
// monitorEventLoopDelay reports it (prom-client's nodejs_eventloop_lag_max_seconds, reset by each
// scrape), and the slowest `/livez` answer seen by a probe every 20 ms. Target: under 50 ms.
// Run: npm run bench -- attacks (BENCH_SECONDS per class, default 4).
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { gql, givenBenchSite, machine, startBenchServer } from './support/bench-server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/**
 * Rounds over every class, alternating (see support/interleaved.ts). A request that blocks the loop
 * does so in every round; another process's load rarely hits one class in all of them, so each
 * class reports its quietest round's worst delay (and its noisiest beside it).
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Hostile requests in flight at once in each class: one, so each row is one request's cost. */
const CONCURRENCY = 1;
const TARGET_MS = 50;

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** POSTs a prepared body; resolves with the status and the first error code of the answer. */
function post(
  baseUrl: string,
  path: string,
  body: Buffer,
  key: string | null,
): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${baseUrl}${path}`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 4096) text += chunk;
        });
        res.on('end', () => {
          const code = /"code":"([A-Z_]+)"/.exec(text)?.[1] ?? 'OK';
          resolve({ status: res.statusCode ?? 0, code });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const graphqlBody = (query: string, variables: unknown = {}) =>
  Buffer.from(JSON.stringify({ query, variables }));

/**
 * The server's worst event-loop delay since the previous scrape (ms; scraping resets it) and the
 * CPU time the server process has used so far (ms).
 */
async function scrape(baseUrl: string): Promise<{ loopMaxMs: number; cpuMs: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
  return {
    loopMaxMs: metric('nodejs_eventloop_lag_max_seconds'),
    cpuMs: metric('process_cpu_seconds_total'),
  };
}

/** Probes `/livez` every 20 ms until stopped; resolves with the slowest answer, from when it was due. */
function probeLiveness(baseUrl: string): { stop(): Promise<number> } {
  const start = performance.now();
  let slowest = 0;
  let running = true;
  const pending: Promise<void>[] = [];
  let timer: NodeJS.Timeout;
  const schedule = (k: number) => {
    const due = start + k * 20;
    timer = setTimeout(
      () => {
        if (!running) return;
        pending.push(
          new Promise<void>((resolve) => {
            const req = request(`${baseUrl}/livez`, { agent }, (res) => {
              res.resume();
              res.on('end', () => {
                slowest = Math.max(slowest, performance.now() - due);
                resolve();
              });
            });
            req.on('error', () => resolve());
            req.end();
          }),
        );
        schedule(Math.max(k + 1, Math.ceil((performance.now() - start) / 20)));
      },
      Math.max(0, due - performance.now()),
    );
  };
  schedule(0);
  return {
    async stop() {
      running = false;
      clearTimeout(timer);
      await Promise.all(pending);
      return slowest;
    },
  };
}

interface Attack {
  name: string;
  /** One hostile request; resolves with its outcome. */
  send: () => Promise<{ status: number; code: string }>;
  /** Concurrency of this class (default {@link CONCURRENCY}). */
  concurrency?: number;
}

interface Row {
  name: string;
  requests: number;
  outcomes: string;
  /** The server's worst loop delay over one idle second just before: what the machine adds. */
  idleLoopMaxMs: number;
  loopMaxMs: number;
  livezMs: number;
  cpuMsPerRequest: number;
}

async function run(baseUrl: string, attack: Attack): Promise<Row> {
  await scrape(baseUrl);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idle = await scrape(baseUrl); // also resets the server's histogram
  const probe = probeLiveness(baseUrl);
  const deadline = performance.now() + SECONDS * 1000;
  const outcomes = new Map<string, number>();
  let requests = 0;
  await Promise.all(
    Array.from({ length: attack.concurrency ?? CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        let outcome: string;
        try {
          const { status, code } = await attack.send();
          outcome = `${status} ${code}`;
        } catch (error) {
          outcome = `client error ${(error as Error).message}`;
        }
        requests += 1;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }),
  );
  const livezMs = await probe.stop();
  const after = await scrape(baseUrl);
  return {
    name: attack.name,
    requests,
    outcomes: [...outcomes].map(([outcome, n]) => `${outcome} ×${n}`).join(', '),
    idleLoopMaxMs: idle.loopMaxMs,
    loopMaxMs: after.loopMaxMs,
    livezMs,
    cpuMsPerRequest: (after.cpuMs - idle.cpuMs) / Math.max(1, requests),
  };
}

/** One graphql-ws operation on a fresh connection: the code of its error, or OK. */
function wsOperation(
  baseUrl: string,
  query: string,
  variables: unknown,
): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const done = (code: string) => {
      socket.close();
      resolve({ status: 101, code });
    };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; payload?: unknown };
      if (message.type === 'connection_ack')
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
      else if (message.type === 'error')
        done(/"code":"([A-Z_]+)"/.exec(JSON.stringify(message.payload))?.[1] ?? 'ERROR');
      else if (message.type === 'next' || message.type === 'complete') done('OK');
    });
    socket.on('error', reject);
  });
}

async function main(): Promise<void> {
  const server = await startBenchServer({ env: { RATE_LIMIT_DEFAULT: '0' } });
  try {
    const { url, adminKey } = server;
    const { devKey, siteId, siteKey } = await givenBenchSite(url, adminKey);
    const EVIL = { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } };
    // The costliest pattern the caps allow on RE2's slow path (many NFA states live at once).
    const DENSE = { type: 'object', properties: { s: { type: 'string', pattern: '[ab]*a[ab]{20}$' } } };
    const name = 'bench-hostile';
    const manifest = {
      name,
      version: '1.0.0',
      category: 'UTILITIES',
      permissions: ['events.emit'],
      configSchema: { type: 'object' },
      widgets: [
        { name: 'evil', category: 'DISPLAY', configSchema: EVIL },
        { name: 'dense', category: 'DISPLAY', configSchema: DENSE },
        { name: 'escape', category: 'DISPLAY' },
      ],
      functions: [{ name: 'unique', inputSchema: { type: 'array', uniqueItems: true } }, { name: 'noisy' }],
    };
    // The widest output the caps allow: 64 KiB of markup, 32 KiB of stylesheet, both hostile;
    // a different root per config, so every render is a miss.
    const source = `module.exports = {
      widgets: {
        evil: () => ({ html: '<p>x</p>' }),
        dense: () => ({ html: '<p>x</p>' }),
        escape: (config) => {
          let html = ''; while (html.length < 63 * 1024) html += '<div onclick="x()"><p>a</div></div><img src=x onerror=1><iframe srcdoc="<b>"></iframe><a href="javascript:1">l</a>';
          let css = ''; while (css.length < 31 * 1024) css += ':root ~ * { display:none } body + p { color: red } .a { &:hover { color: blue } } @media (x) { .b { c: d } }';
          return { html: html.slice(0, 63 * 1024), css: css.slice(0, 31 * 1024), javascript: 'var n = ' + JSON.stringify(config.n) };
        },
      },
      functions: {
        unique: (d) => d.length,
        noisy: (d, ctx) => { for (let i = 0; i < 16; i++) ctx.log('\\u0000 \\ud800 ' + 'x'.repeat(1000)); throw new Error('x'.repeat(999) + '\\u{1F600}\\u0000'); },
      },
    };`;
    await gql(
      url,
      devKey,
      'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }',
      {
        i: { manifest, source },
      },
    );
    await gql(url, siteKey, `mutation { installAddon(id: "${name}", config: {}) { success } }`);

    const RENDER = `query($w: String!, $c: JSON!, $s: ID) { renderWidget(addon: "${name}", widget: $w, config: $c, context: {}, siteId: $s) { html css } }`;
    const EXECUTE = `mutation($f: String!, $d: JSON!) { executeAddonFunction(addonId: "${name}", function: $f, data: $d) }`;
    const bodies = {
      redos: graphqlBody(RENDER, { w: 'evil', c: { s: `${'a'.repeat(40)}!` }, s: siteId }),
      dense: graphqlBody(RENDER, { w: 'dense', c: { s: 'ab'.repeat(38_000) }, s: siteId }),
      unique: graphqlBody(EXECUTE, {
        f: 'unique',
        d: Array.from({ length: 10_000 }, (_, i) => ({ id: i, tags: ['x', i] })),
      }),
      uniqueOver: graphqlBody(EXECUTE, {
        f: 'unique',
        d: Array.from({ length: 40_000 }, (_, i) => ({ id: i })),
      }),
      manyFunctions: Buffer.from(
        JSON.stringify({
          name: 'bench-huge',
          version: '1.0.0',
          category: 'UTILITIES',
          source: 'module.exports = {}',
          functions: Array.from({ length: 20_000 }, (_, i) => ({
            name: `f${i}`,
            inputSchema: { type: 'object' },
          })),
        }),
      ),
      wideSchema: Buffer.from(
        JSON.stringify({
          name: 'bench-wide',
          version: '1.0.0',
          category: 'UTILITIES',
          source: 'module.exports = {}',
          configSchema: {
            type: 'object',
            properties: Object.fromEntries(
              Array.from({ length: 8000 }, (_, i) => [`p${i}`, { type: 'string' }]),
            ),
          },
        }),
      ),
      endlessModule: graphqlBody(
        'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }',
        {
          i: {
            manifest: { name: 'bench-endless', version: '1.0.0', category: 'UTILITIES' },
            source: 'for (;;) {}',
          },
        },
      ),
      noisy: graphqlBody(EXECUTE, { f: 'noisy', d: {} }),
      nul: graphqlBody('query($n: String) { addon(name: $n) { name } }', { n: 'a\u0000\ud800' }),
      hugeEnum: graphqlBody('query($c: AddonCategory) { addons(category: $c) { totalCount } }', {
        c: 'A'.repeat(2 * 1024 * 1024 - 1000),
      }),
      deepJson: Buffer.from(
        `{"query":${JSON.stringify(EXECUTE)},"variables":{"f":"unique","d":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}`,
      ),
      subscriptionOverHttp: graphqlBody('subscription { events { id } }'),
    };
    let renders = 0;
    const attacks: Attack[] = [
      {
        name: 'baseline: `{ __typename }`',
        send: () => post(url, '/graphql', graphqlBody('{ __typename }'), null),
      },
      {
        name: '1. ReDoS: `^(a+)+$` on 40 `a` and `!`, anonymous renderWidget',
        send: () => post(url, '/graphql', bodies.redos, null),
      },
      {
        name: '1. the densest pattern the caps allow (`[ab]*a[ab]{20}$`, 76 KB string, just under the budget)',
        send: () => post(url, '/graphql', bodies.dense, null),
      },
      {
        name: '2. uniqueItems on 10,000 objects (the cap)',
        send: () => post(url, '/graphql', bodies.unique, siteKey),
      },
      {
        name: '2. uniqueItems on 40,000 objects (refused)',
        send: () => post(url, '/graphql', bodies.uniqueOver, siteKey),
      },
      {
        name: '3. manifest with 20,000 functions',
        send: () => post(url, '/api/addons/register', bodies.manyFunctions, devKey),
      },
      {
        name: '3. configSchema with 8,000 properties',
        send: () => post(url, '/api/addons/register', bodies.wideSchema, devKey),
      },
      {
        name: '4. publish of a module that never finishes loading',
        send: () => post(url, '/graphql', bodies.endlessModule, devKey),
        concurrency: 2,
      },
      {
        name: '5. NUL, unpaired surrogates and a split pair in logs and errors',
        send: () => post(url, '/graphql', bodies.noisy, siteKey),
      },
      {
        name: '6 and 9. renders at the output caps (64 KiB hostile markup, 32 KiB hostile CSS), every one a miss',
        send: () =>
          post(
            url,
            '/graphql',
            graphqlBody(RENDER, { w: 'escape', c: { n: (renders += 1) }, s: siteId }),
            null,
          ),
      },
      {
        name: '7. NUL and unpaired surrogates in variables',
        send: () => post(url, '/graphql', bodies.nul, null),
      },
      { name: '7. 2 MB enum variable', send: () => post(url, '/graphql', bodies.hugeEnum, null) },
      { name: '7. JSON nested 5,000 deep', send: () => post(url, '/graphql', bodies.deepJson, siteKey) },
      {
        name: '7. subscription over HTTP',
        send: () => post(url, '/graphql', bodies.subscriptionOverHttp, null),
      },
      {
        name: '8. WebSocket: subscription nested past the depth limit',
        send: () =>
          wsOperation(
            url,
            `subscription { deliveries { ${'event { deliveries { '.repeat(8)}id${' } }'.repeat(8)} } }`,
            {},
          ),
      },
      {
        name: '8. WebSocket: 2,100 tokens',
        send: () => wsOperation(url, `{ viewer { ${'role '.repeat(2100)} } }`, {}),
      },
    ];

    const rounds: Row[][] = attacks.map(() => []);
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const [i, attack] of attacks.entries()) {
        process.stderr.write(`  round ${round}: ${attack.name}\n`);
        rounds[i].push(await run(url, attack));
      }
    }
    const rows = rounds.map((runs) => {
      const quietest = runs.reduce((a, b) => (b.loopMaxMs < a.loopMaxMs ? b : a));
      const sortedCpu = runs.map((r) => r.cpuMsPerRequest).sort((a, b) => a - b);
      return {
        ...quietest,
        requests: runs.reduce((n, r) => n + r.requests, 0),
        outcomes: [
          ...new Set(runs.flatMap((r) => r.outcomes.split(', ').map((o) => o.replace(/ ×\d+$/, '')))),
        ].join(', '),
        noisiestLoopMaxMs: Math.max(...runs.map((r) => r.loopMaxMs)),
        idleLoopMaxMs: Math.min(...runs.map((r) => r.idleLoopMaxMs)),
        cpuMsPerRequest: sortedCpu[Math.floor(sortedCpu.length / 2)],
      };
    });
    const attacksOnly = rows.slice(1);
    const worst = attacksOnly.reduce((a, b) => (b.loopMaxMs > a.loopMaxMs ? b : a));
    const costliest = attacksOnly.reduce((a, b) => (b.cpuMsPerRequest > a.cpuMsPerRequest ? b : a));
    const noisiest = Math.max(rows[0].loopMaxMs, ...rows.map((r) => r.idleLoopMaxMs));
    console.log(`## Bounded API: event-loop delay under hostile input (${await machine()})

One server process (NODE_ENV=production, rate limits off); the attacker in another process sends
each class for ${SECONDS} s, one request after another, in ${ROUNDS} alternating rounds over all classes.
"loop max" is the server's own worst event-loop delay over a class's round (perf_hooks
monitorEventLoopDelay through prom-client's nodejs_eventloop_lag_max_seconds, 10 ms sampling,
reset before each round): the quietest round, then the noisiest; "idle" is the same over one second
with no requests just before (the least of the rounds: what the shared machine adds on its own);
"/livez" is the slowest answer, from when it was due, to a probe every 20 ms in the quietest round;
"CPU/req" is the server process's CPU time per request (all its threads; median of the rounds).
Target: loop max under ${TARGET_MS} ms. The machine was shared with other engineers' test runs.

| attack class | requests | answers (status code) | idle ms | loop max ms (quietest / noisiest round) | /livez ms | CPU/req ms |
| --- | ---: | --- | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${r.name} | ${r.requests} | ${r.outcomes} | ${r.idleLoopMaxMs.toFixed(1)} | ${r.loopMaxMs.toFixed(1)} / ${r.noisiestLoopMaxMs.toFixed(1)} | ${r.livezMs.toFixed(1)} | ${r.cpuMsPerRequest.toFixed(2)} |`).join('\n')}

Worst loop delay over the attack classes: ${worst.loopMaxMs.toFixed(1)} ms (${worst.name}; ${worst.loopMaxMs < TARGET_MS ? 'under' : 'OVER'} the ${TARGET_MS} ms target). The same run's noise:
${noisiest.toFixed(1)} ms of loop delay with no hostile request (idle seconds and the baseline row). Costliest hostile
request in server CPU: ${costliest.cpuMsPerRequest.toFixed(1)} ms (${costliest.name}), which bounds the longest
task one such request can run on the loop (CPU time is not stretched by other processes' load).`);
  } finally {
    agent.destroy();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
