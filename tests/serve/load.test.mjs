// A bounded load test of bwla serve on 127.0.0.1: a fixed number of requests
// at a fixed concurrency, mixed streaming and non-streaming greedy requests
// plus some bad ones. Every good response must equal the same prompt run alone
// (concurrency 1), every bad one must be a 400, and the server must survive and
// stop cleanly. Prints requests/s and completion tokens/s per concurrency.
// Environment: BWLA_BIN, BWLA_MODEL, BWLA_REQUESTS (default 200),
// BWLA_REQUESTS=0 skips the correctness part (benchmark only),
// BWLA_CONCURRENCY (default 8), BWLA_REPORT (comma list of concurrencies to
// time, default "1,4,8"), BWLA_MAX_TOKENS (default 32), BWLA_PARALLEL (slots,
// default 4), BWLA_THREADS (default 2), BWLA_REPORT_REQUESTS (requests per
// timed concurrency; default max(4c, 16)), BWLA_TIME_LIMIT_S (default 300).
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { env, startServer } from './common.mjs';

const model = env('BWLA_MODEL');
const nreq = Number(process.env.BWLA_REQUESTS || 200);
const conc = Number(process.env.BWLA_CONCURRENCY || 8);
const report = (process.env.BWLA_REPORT || '1,4,8').split(',').map(Number).filter((x) => x > 0);
const maxTokens = Number(process.env.BWLA_MAX_TOKENS || 32);
const parallel = process.env.BWLA_PARALLEL || '4';
const limitMs = 1000 * Number(process.env.BWLA_TIME_LIMIT_S || 300);
const server = await startServer(model, ['--parallel', parallel, '--queue', '64', '-t', process.env.BWLA_THREADS || '2']);
const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: limitMs });
const name = 'm';

const starts = ['Once upon a time', 'The little dog', 'Lily wanted to', 'One day, Tom', 'The sun', 'She had a big',
  'In the park there was', 'Mom said', 'The bird flew', 'He was very happy because', 'A cat and a mouse',
  'The old tree'];
// Request i: prompt, length, streamed or not; every 10th is bad.
function spec(i) {
  return { prompt: starts[i % starts.length], max_tokens: 8 + (i * 7) % (maxTokens - 7), stream: i % 2 === 1, bad: i % 10 === 9 };
}
const key = (s) => `${s.prompt}|${s.max_tokens}`;

async function run(s) {
  if (s.bad) {
    try {
      await client.completions.create({ model: name, prompt: s.prompt, max_tokens: s.max_tokens, temperature: -1 });
    } catch (e) {
      return { bad: true, status: e.status };
    }
    return { bad: true, status: 200 };
  }
  const body = { model: name, prompt: s.prompt, max_tokens: s.max_tokens, temperature: 0 };
  if (!s.stream) {
    const r = await client.completions.create(body);
    return { text: r.choices[0].text, tokens: r.usage.completion_tokens };
  }
  const st = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', tokens = 0;
  for await (const ch of st) {
    if (ch.choices.length) text += ch.choices[0].text;
    if (ch.usage) tokens = ch.usage.completion_tokens;
  }
  return { text, tokens };
}

// n requests (spec(0..n-1)) with c in flight; returns results and seconds.
async function drive(n, c) {
  const out = new Array(n);
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      out[i] = await run(spec(i));
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  return { out, seconds: (performance.now() - t0) / 1000 };
}

const deadline = setTimeout(() => { console.error('load test exceeded its time limit'); process.exit(1); }, limitMs);

test('each response equals the same prompt alone; bad requests are 400s', { skip: nreq === 0 }, async () => {
  // The reference: every distinct good request alone, one at a time.
  const alone = new Map();
  for (let i = 0; i < nreq; ++i) {
    const s = spec(i);
    if (s.bad || alone.has(key(s))) continue;
    alone.set(key(s), (await run({ ...s, stream: false })).text);
  }
  const { out, seconds } = await drive(nreq, conc);
  let wrong = 0, bad = 0, tokens = 0;
  for (let i = 0; i < nreq; ++i) {
    const s = spec(i), r = out[i];
    if (s.bad) {
      assert.equal(r.status, 400, `request ${i} should have been refused`);
      ++bad;
      continue;
    }
    tokens += r.tokens;
    if (r.text !== alone.get(key(s))) {
      ++wrong;
      console.log(`# request ${i} (${s.stream ? 'stream' : 'plain'}, '${s.prompt}', ${s.max_tokens}):\n#   got  ${JSON.stringify(r.text)}\n#   alone ${JSON.stringify(alone.get(key(s)))}`);
    }
  }
  assert.equal(wrong, 0, `${wrong} responses differ from the prompt run alone`);
  assert.ok(server.alive(), 'the server is still running');
  console.log(`# ${nreq} requests (${bad} bad) at concurrency ${conc}: ${(nreq / seconds).toFixed(1)} req/s, ${(tokens / seconds).toFixed(1)} completion tokens/s`);
});

test('throughput at each concurrency', async () => {
  const rows = [];
  for (const c of report) {
    const n = Number(process.env.BWLA_REPORT_REQUESTS || 0) || Math.max(4 * c, 16);
    const { out, seconds } = await drive(n, c);
    const good = out.filter((r) => !r.bad);
    const tokens = good.reduce((a, r) => a + r.tokens, 0);
    rows.push({ concurrency: c, requests: n, seconds: +seconds.toFixed(3), req_per_s: +(n / seconds).toFixed(2), tok_per_s: +(tokens / seconds).toFixed(1) });
  }
  for (const r of rows) console.log(`# concurrency ${r.concurrency}: ${r.requests} requests in ${r.seconds} s, ${r.req_per_s} req/s, ${r.tok_per_s} completion tokens/s`);
  console.log('# JSON ' + JSON.stringify(rows));
  const models = await (await fetch(server.url + '/v1/models')).json();
  assert.ok(models.data.length === 1);
});

test('the server stops cleanly', async () => {
  clearTimeout(deadline);
  const e = await server.stop();
  assert.deepEqual(e, { code: 0, signal: null }, server.log().slice(-2000));
});
