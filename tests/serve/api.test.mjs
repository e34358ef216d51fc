// bwla serve through the official OpenAI Node.js client, on 127.0.0.1 only.
// Environment (set by tests/serve/run.sh): BWLA_BIN, BWLA_MODEL (model dir),
// BWLA_WORK (scratch dir), BWLA_DATA (task data dir), BWLA_PIQA_LIMIT (items
// for the zero-shot check; 0 = skip it), BWLA_LOGLIK_TOL (per-choice loglik
// tolerance against bwla eval; unset = compare the accuracy only).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { env, startServer, bwla, postJson, readJson } from './common.mjs';

const model = env('BWLA_MODEL');
const work = env('BWLA_WORK');
fs.mkdirSync(work, { recursive: true });
const server = await startServer(model, ['--parallel', '4', '--ctx', '512', '--max-body-kib', '64', '-t', '2']);
const client = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const name = path.basename(model);

async function greedy(prompt, max_tokens) {
  const r = await client.completions.create({ model: name, prompt, max_tokens, temperature: 0 });
  return r.choices[0].text;
}

test('health and models', async () => {
  const h = await (await fetch(server.url + '/health')).json();
  assert.equal(h.status, 'ok');
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  const m = list.data[0];
  assert.equal(typeof m.id, 'string');
  assert.equal(m.object, 'model');
  assert.equal(m.context_length, 512);
  assert.equal(typeof m.chat_template, 'string', 'the model info says which chat template is used');
});

test('completion', async () => {
  const r = await client.completions.create({ model: name, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.ok(c.text.length > 0);
  assert.equal(c.finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 20);
  assert.equal(r.usage.prompt_tokens + r.usage.completion_tokens, r.usage.total_tokens);
  // Greedy is deterministic, and a seeded sample is repeatable.
  assert.equal(await greedy('Once upon a time', 20), c.text);
  const s1 = await client.completions.create({ model: name, prompt: 'The dog', max_tokens: 20, temperature: 1, seed: 42 });
  const s2 = await client.completions.create({ model: name, prompt: 'The dog', max_tokens: 20, temperature: 1, seed: 42 });
  assert.equal(s1.choices[0].text, s2.choices[0].text);
});

test('a stop string ends the text before it', async () => {
  const full = await greedy('Once upon a time', 40);
  const stop = full.slice(10, 14);
  const r = await client.completions.create({ model: name, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
});

test('streamed completion equals the non-streamed one', async () => {
  const want = await greedy('Lily and Ben went to', 30);
  const stream = await client.completions.create({
    model: name, prompt: 'Lily and Ben went to', max_tokens: 30, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, finish = null, usage = null;
  for await (const ch of stream) {
    if (ch.choices.length) {
      text += ch.choices[0].text;
      if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
      ++chunks;
    }
    if (ch.usage) usage = ch.usage;
  }
  assert.equal(text, want);
  assert.ok(chunks > 1, `expected several chunks, got ${chunks}`);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 30);
});

test('chat completion, plain and streamed', async () => {
  const info = (await client.models.list()).data[0];
  const messages = [{ role: 'user', content: 'Once upon a time' }];
  const r = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  if (info.chat_template === 'plain') {
    // Plain concatenation: each message on its own line, then the model continues.
    assert.equal(r.choices[0].message.content, await greedy('Once upon a time\n', 12));
  }
  const stream = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0, stream: true });
  let text = '';
  for await (const ch of stream) if (ch.choices.length && ch.choices[0].delta.content) text += ch.choices[0].delta.content;
  assert.equal(text, r.choices[0].message.content);
  const lp = await client.chat.completions.create({ model: name, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
  assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
  assert.equal(lp.choices[0].logprobs.content[0].top_logprobs.length, 2);
});

test('echo + logprobs equal bwla ppl per token', async () => {
  const text = 'Once upon a time, there was a little girl named Lily. She liked to play outside with her friends in the park.';
  const file = path.join(work, 'echo.txt');
  fs.writeFileSync(file, text);
  const tok = await postJson(server.url + '/tokenize', { content: text });
  assert.equal(tok.status, 200);
  const n = tok.json.tokens.length;
  const out = path.join(work, 'echo-ppl.json');
  fs.rmSync(out, { force: true });
  bwla(['ppl', model, '--data', file, '--ctx', String(n), '--max-windows', '1', '--tokens-out', out, '-q']);
  const ppl = readJson(out);
  assert.deepEqual(ppl.tokens, tok.json.tokens, 'the server and bwla ppl tokenize the text alike');
  const r = await client.completions.create({ model: name, prompt: text, max_tokens: 0, echo: true, logprobs: 3 });
  const c = r.choices[0];
  assert.equal(c.text, text);
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, n);
  assert.equal(lp.token_logprobs[0], null, 'the first token has no prediction');
  assert.equal(lp.text_offset[0], 0);
  for (let i = 1; i < n; ++i) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1], 'text offsets never go back');
  assert.equal(ppl.logprob_index.length, n - 1);
  let maxDiff = 0;
  for (let i = 0; i < n - 1; ++i) {
    const at = ppl.logprob_index[i];
    maxDiff = Math.max(maxDiff, Math.abs(lp.token_logprobs[at] - ppl.logprobs[i]));
    assert.ok(Object.keys(lp.top_logprobs[at]).length >= 1);
  }
  assert.ok(maxDiff < 1e-4, `max |server − ppl| logprob ${maxDiff}`);
  // A batch of two prompts (as lm-eval sends): one choice each, in order.
  const b = await client.completions.create({ model: name, prompt: [text, 'The cat'], max_tokens: 0, echo: true, logprobs: 0 });
  assert.equal(b.choices.length, 2);
  assert.deepEqual(b.choices.map((x) => x.index), [0, 1]);
  assert.deepEqual(b.choices[0].logprobs.token_logprobs, lp.token_logprobs);
});

test('bad requests get OpenAI error bodies', async () => {
  const bad = async (body, param) => {
    await assert.rejects(client.completions.create({ model: name, ...body }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `expected a 400, got ${e.status}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.equal(e.error.type, 'invalid_request_error');
      assert.equal(typeof e.error.message, 'string');
      if (param !== undefined) assert.equal(e.error.param, param);
      return true;
    });
  };
  await bad({ prompt: 'a', temperature: 5 }, 'temperature');
  await bad({ prompt: 'a', max_tokens: -3 }, 'max_tokens');
  await bad({ prompt: 'a', max_tokens: 100000 }, 'max_tokens');
  await bad({ prompt: 42 }, 'prompt');
  await bad({ prompt: 'a', stop: [1, 2] }, 'stop');
  await bad({ prompt: 'a', n: 3 }, 'n');
  await bad({ prompt: 'word '.repeat(600) }, 'prompt');  // longer than the 512-token context
  await assert.rejects(client.chat.completions.create({ model: name, messages: [{ role: 'wizard', content: 'x' }] }),
    (e) => e.status === 400 && e.error.param === 'messages');
  const broken = await postJson(server.url + '/v1/completions', '{"prompt": "a", ', true);
  assert.equal(broken.status, 400);
  assert.equal(typeof broken.json.error.message, 'string');
  const missing = await fetch(server.url + '/v1/nothing');
  assert.equal(missing.status, 404);
  assert.equal(typeof (await missing.json()).error.message, 'string');
  const huge = await postJson(server.url + '/v1/completions', { prompt: 'x'.repeat(100 * 1024) });
  assert.equal(huge.status, 413);
  assert.equal(typeof huge.json.error.message, 'string');
  // The server is still serving.
  assert.ok((await greedy('The cat', 3)).length > 0);
});

test('a client that disconnects mid-stream frees its slot', async () => {
  const health = async () => (await fetch(server.url + '/health')).json();
  const before = await health();
  const ac = new AbortController();
  const stream = await client.completions.create(
    { model: name, prompt: 'Once', max_tokens: 480, temperature: 0, stream: true }, { signal: ac.signal });
  let chunks = 0;
  try {
    for await (const ch of stream) if (++chunks === 2) ac.abort();
  } catch { /* the abort */ }
  console.log(`# chunks ${chunks}`);
  let h = await health();
  for (let i = 0; i < 200 && (h.slots_processing > 0 || h.cancelled === before.cancelled); ++i) {
    await new Promise((r) => setTimeout(r, 25));
    h = await health();
  }
  assert.equal(h.slots_processing, 0, 'the slot is free again');
  assert.equal(h.cancelled, before.cancelled + 1, 'the request was cancelled, not run to its end');
  assert.equal(h.slots_idle, 4);
});

test('tokenize and detokenize', async () => {
  const t = await postJson(server.url + '/tokenize', { content: 'Once upon a time', add_special: false });
  const d = await postJson(server.url + '/detokenize', { tokens: t.json.tokens });
  assert.equal(d.json.content, 'Once upon a time');
  const bad = await postJson(server.url + '/detokenize', { tokens: [-1] });
  assert.equal(bad.status, 400);
});

const piqaLimit = Number(process.env.BWLA_PIQA_LIMIT || 0);
test('zero-shot PIQA through /v1/completions equals bwla eval', { skip: piqaLimit === 0 }, async () => {
  const data = env('BWLA_DATA');
  const reqFile = path.join(work, 'piqa-requests.json');
  fs.rmSync(reqFile, { force: true });
  const evalOut = JSON.parse(bwla(['eval', model, '--tasks', 'piqa', '--limit', String(piqaLimit), '--data-dir', data,
    '--requests-out', reqFile, '--json', '-q']));
  const items = readJson(reqFile).tasks.piqa.items;
  assert.equal(items.length, piqaLimit);
  const tokenize = async (s) => (await postJson(server.url + '/tokenize', { content: s, add_special: true })).json.tokens;
  // lm-eval's way: tokenize context and context + continuation, split at their
  // common prefix, send the ids with echo and sum the continuation's logprobs.
  const prompts = [], spans = [];
  for (const it of items) {
    for (let c = 0; c < it.continuations.length; ++c) {
      let ctx = it.contexts[c], cont = it.continuations[c];
      const ws = ctx.match(/[ \t\n\r]+$/);
      if (ws) { cont = ws[0] + cont; ctx = ctx.slice(0, -ws[0].length); }
      const ci = await tokenize(ctx), whole = await tokenize(ctx + cont);
      let lcp = 0;
      while (lcp < Math.min(ci.length, whole.length) && ci[lcp] === whole[lcp]) ++lcp;
      assert.ok(lcp > 0, 'PIQA contexts are never empty');
      prompts.push(whole);
      spans.push(lcp);
    }
  }
  const lls = [];
  for (let b = 0; b < prompts.length; b += 16) {
    const r = await client.completions.create({ model: name, prompt: prompts.slice(b, b + 16), max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
    for (const ch of r.choices) {
      const k = b + ch.index, lp = ch.logprobs.token_logprobs;
      assert.equal(lp.length, prompts[k].length);
      lls.push(lp.slice(spans[k]).reduce((a, x) => a + x, 0));
    }
  }
  let k = 0, correct = 0, maxDiff = 0;
  for (const it of items) {
    for (let c = 0; c < it.continuations.length; ++c) maxDiff = Math.max(maxDiff, Math.abs(lls[k + c] - it.logliks[c]));
    let best = 0;
    for (let c = 0; c < it.continuations.length; ++c) if (lls[k + c] > lls[k + best]) best = c;
    k += it.continuations.length;
    if (best === it.gold) ++correct;
  }
  const acc = correct / items.length;
  // bwla eval feeds context and continuation as two forwards, the server one. In
  // fp32 that changes the logits by ~1e-6; with 6-bit activations such a change
  // can move an activation across a rounding boundary, so a packed W1A6 model's
  // logliks are compared through the accuracy only (BWLA_LOGLIK_TOL unset).
  const tol = Number(process.env.BWLA_LOGLIK_TOL || 0);
  if (tol > 0) assert.ok(maxDiff < tol, `max |server − bwla eval| loglik per choice ${maxDiff}`);
  assert.equal(acc, evalOut.results.piqa.acc, `server acc ${acc} vs bwla eval ${evalOut.results.piqa.acc}`);
  console.log(`# piqa first ${items.length}: acc ${acc} through the server, ${evalOut.results.piqa.acc} by bwla eval; ` +
    `max loglik difference ${maxDiff.toExponential(2)}`);
});

test('SIGINT stops the server gracefully', async () => {
  const e = await server.stop();
  assert.deepEqual(e, { code: 0, signal: null }, server.log().slice(-2000));
  assert.match(server.log(), /POST \/v1\/completions 200/, 'one log line per request');
});
