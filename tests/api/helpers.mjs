// Starts `moeinfer serve --port 0` (binary from $MOEINFER) and waits until /health is 200.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const demoMoe = path.join(repoRoot, 'models', 'demo-moe.gguf');
export const demoDense = path.join(repoRoot, 'models', 'demo-dense.gguf');

export async function startServer(args = []) {
  const bin = process.env.MOEINFER;
  if (!bin) throw new Error('set MOEINFER to the moeinfer binary');
  const proc = spawn(bin, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line:\n${stderr}`)), 30000);
    proc.stderr.on('data', (d) => {
      stderr += d.toString();
      const m = stderr.match(/moeinfer serve: listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
  });
  for (let i = 0; i < 300; i++) {
    const r = await fetch(`${url}/health`).catch(() => null);
    if (r && r.status === 200) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return {
    url,
    proc,
    stderr: () => stderr,
    // Peak resident memory of the server (kB), from /proc.
    peakRssKb() {
      const s = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(s.match(/VmHWM:\s+(\d+) kB/)[1]);
    },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

export async function metric(url, name, model = null) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const label = model ? `{model="${model}"}` : '';
  const line = text.split('\n').find((l) => l.startsWith(`moeinfer_${name}${model ? label : ''} `)
    || (!model && l.startsWith(`moeinfer_${name}{`)));
  if (!line) throw new Error(`metric ${name} missing:\n${text}`);
  return Number(line.split(' ').pop());
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
