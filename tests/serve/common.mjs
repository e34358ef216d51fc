// Helpers shared by the bwla serve tests: start a server on 127.0.0.1 with an
// OS-chosen port, stop it with SIGINT, run the bwla CLI.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (tests/serve/run.sh sets it)`);
  return v;
}

// Starts `bwla serve MODEL --port 0 ...`; resolves once it prints its address.
export function startServer(model, extra = []) {
  const bin = env('BWLA_BIN');
  const args = ['serve', model, '--host', '127.0.0.1', '--port', '0', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  let exitInfo = null;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    exitInfo = { code, signal };
    resolve(exitInfo);
  }));
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => log.push(d));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`bwla serve did not start in 60 s:\n${log.join('')}`)), 60000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          proc,
          log: () => log.join(''),
          alive: () => exitInfo === null,
          // SIGINT: the server drains and exits 0.
          stop: async () => {
            if (exitInfo === null) proc.kill('SIGINT');
            return exited;
          },
        });
      }
    });
    exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`bwla serve exited (${JSON.stringify(e)}) before listening:\n${log.join('')}`));
    });
  });
}

export function bwla(args) {
  return execFileSync(env('BWLA_BIN'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function postJson(url, body, raw = false) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* checked by the caller */ }
  return { status: r.status, json, text };
}

export function readJson(path) {
  return JSON.parse(fs.readFileSync(path, 'utf8'));
}
