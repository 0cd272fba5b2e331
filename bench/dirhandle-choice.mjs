// lib/core/dirhandle.ts (why by descriptor): how to work inside a DATA_PATH another user owns. 1000 renames
// (a moveAside of 1000 entries) three ways: (a) by held directory descriptors in this process (rename
// /proc/self/fd/A/name → /proc/self/fd/B/name, what DirHandle does); (b) one worker child dropped to the owner
// (setpriv), told each rename over a pipe and answering each; (c) one process per rename as the owner
// (setpriv mv). Run as root: node bench/dirhandle-choice.mjs [N]
import { spawn, spawnSync } from 'node:child_process';
import { constants as fsc, mkdtempSync, promises as fs, chownSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
const N = Number(process.argv[2] ?? 1000);
const UID = 65534;
const setup = async () => {
  const dir = mkdtempSync('/tmp/dirhandle-choice-');
  chownSync(dir, UID, UID);
  await fs.mkdir(`${dir}/aside`, { mode: 0o700 });
  chownSync(`${dir}/aside`, UID, UID);
  for (let i = 0; i < N; i++) {
    writeFileSync(`${dir}/f${i}`, '');
    chownSync(`${dir}/f${i}`, UID, UID);
  }
  return dir;
};
const time = async (label, fn, n = N) => {
  const dir = await setup();
  const t0 = process.hrtime.bigint();
  await fn(dir);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(`${label}: ${n} renames in ${ms.toFixed(1)} ms (${((ms * 1000) / n).toFixed(1)} µs each)`);
  await fs.rm(dir, { recursive: true, force: true });
};
await time('(a) descriptor, in process', async (dir) => {
  const d = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  const a = await fs.open(`/proc/self/fd/${d.fd}/aside`, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  for (let i = 0; i < N; i++) await fs.rename(`/proc/self/fd/${d.fd}/f${i}`, `/proc/self/fd/${a.fd}/f${i}`);
  await a.sync();
  await d.sync();
  await a.close();
  await d.close();
});
await time('(b) worker child as the owner, one pipe round per rename', async (dir) => {
  const code = `const fs=require('fs');const rl=require('readline').createInterface({input:process.stdin});
rl.on('line',(l)=>{try{fs.renameSync(process.argv[1]+'/'+l,process.argv[1]+'/aside/'+l);process.stdout.write('ok\\n')}catch(e){process.stdout.write(e.code+'\\n')}});`;
  const child = spawn(
    'setpriv',
    [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', process.execPath, '-e', code, dir],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  for (let i = 0; i < N; i++) {
    child.stdin.write(`f${i}\n`);
    const { value } = await answers.next();
    if (value !== 'ok') throw new Error(value);
  }
  child.stdin.end();
  await new Promise((r) => child.on('close', r));
});
const M = Math.min(N, 200);
await time(
  `(c) one setpriv mv per rename (${M} of them)`,
  async (dir) => {
    for (let i = 0; i < M; i++)
      spawnSync('setpriv', [
        `--reuid=${UID}`,
        `--regid=${UID}`,
        '--clear-groups',
        'mv',
        `${dir}/f${i}`,
        `${dir}/aside/`,
      ]);
  },
  M,
);
