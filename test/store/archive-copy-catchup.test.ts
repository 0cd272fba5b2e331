import { promises as fs } from 'node:fs';
import path from 'node:path';
import { listSegments } from '../../lib/store/segments.js';
import { runCli, startCli } from '../helpers/cli.js';
import { Lab } from '../lab/cluster.js';
import { waitMetaloggerCaughtUp } from '../lab/moosefs.js';
import { sleep, waitFor } from '../lab/proc.js';
import { FaultProxy } from '../lab/proxy.js';
import { LabSshd } from '../lab/sshd.js';

interface Report {
  status: string;
  summary: string;
  lines: string[];
}

/**
 * An off-site copy down for a while (issue #26): `mfs-jobs run archive --follow` follows a real metalogger
 * while files are written through a mount; the SFTP copy's sshd is stopped (by PID) and segments are sealed
 * meanwhile (and, before, the copy goes silent: sealing goes on at its pace). verify names the copy (unreachable, then, with the archiver paused, behind the master); status
 * shows its lag; the sshd comes back with the sources quiet (no new seal to carry the backlog) and the same
 * follower, not restarted, pushes the backlog in order; the copy's archive then equals the store's. A
 * graceful stop with lines pending seals them and hands them to the copy too (exit 0).
 */
describe('archive: a copy down for a while catches up without a restart', () => {
  let lab: Lab;
  let copySshd: LabSshd;
  let link: FaultProxy;
  let config: string;
  let remote: string;
  const store = () => path.join(lab.dir, 'snapshots');

  const ids = async (root: string) => (await listSegments(root, {})).segments.map((s) => s.id);
  const cli = async (args: string[]) => {
    const res = await runCli([...args, '--config', config, '--json'], { timeoutMs: 60_000 });
    return { code: res.code, report: JSON.parse(res.stdout) as Report };
  };
  /** Files made through the mount every 20 ms until stopped. */
  function startWriter(tag: string): { stop(): Promise<void> } {
    let stopped = false;
    const dir = path.join(lab.mount!.dir, 'live');
    const done = (async () => {
      for (let n = 0; !stopped; n++) {
        await fs.writeFile(path.join(dir, `${tag}-${n}`), '');
        await sleep(20);
      }
    })();
    return {
      async stop() {
        stopped = true;
        await done;
      },
    };
  }

  beforeAll(async () => {
    lab = await Lab.start({ metalogger: true, mount: true });
    copySshd = await LabSshd.start(path.join(lab.dir, 'copy-ssh'), { sftpLog: true });
    // The copy is reached through a proxy that can go silent (a firewall dropping packets).
    link = await FaultProxy.start({ host: '127.0.0.1', port: copySshd.port });
    const hostKey = (await fs.readFile(`${copySshd.hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const knownHosts = path.join(lab.dir, 'copy-known-hosts');
    await fs.writeFile(knownHosts, `[127.0.0.1]:${link.port} ${hostKey}\n`, { mode: 0o600 });
    remote = path.join(lab.dir, 'offsite');
    config = await lab.writeConfig({
      snapshotStore: {
        path: store(),
        compression: 'zstd',
        copies: [
          {
            name: 'offsite',
            type: 'sftp',
            host: '127.0.0.1',
            port: link.port,
            user: 'root',
            identityFile: copySshd.clientKey,
            knownHosts,
            path: remote,
            timeoutSeconds: 5,
          },
        ],
      },
      jobs: { archive: { segmentSeconds: 1, pollSeconds: 0.2 }, verify: { lagVersionsWarn: 20 } },
    });
    await fs.mkdir(path.join(lab.mount!.dir, 'live'));
  }, 60_000);
  afterAll(async () => {
    await link?.stop();
    await copySshd?.stop();
    await lab?.stop();
  });

  test('verify and status name the copy behind; its backlog is pushed in order once it is back', async () => {
    const follow = startCli(['run', 'archive', '--follow', '--config', config]);
    let paused = false;
    let writer: { stop(): Promise<void> } | undefined;
    try {
      writer = startWriter('up');
      await waitFor('a segment on the copy', async () => (await ids(remote)).length > 0, 20_000);

      // The copy goes silent (every push waits out its 5 s timeout): the store goes on sealing every second.
      link.faults = { stallAfterBytes: 0 };
      link.cutAll();
      const silent = (await ids(store())).length;
      await waitFor(
        '4 segments sealed while the copy is silent',
        async () => (await ids(store())).length >= silent + 4,
        10_000,
      );
      link.faults = {};
      const sealedThen = await ids(store());
      await waitFor(
        'the copy caught up after the silence',
        async () => {
          const there = await ids(remote);
          return sealedThen.every((id) => there.includes(id));
        },
        20_000,
      );

      // The copy goes down (sshd stopped by PID, its open sessions cut); the store goes on sealing.
      await copySshd.stop();
      link.cutAll();
      const onCopy = await ids(remote);
      const before = (await ids(store())).length;
      await waitFor('3 segments sealed while the copy is down', async () => (await ids(store())).length >= before + 3);
      await writer.stop();
      const caughtUp = await waitMetaloggerCaughtUp(lab.master, lab.metalogger!);
      await waitFor('the store archive at the metalogger', async () => {
        const segs = (await listSegments(store(), {})).segments;
        return (segs.at(-1)?.manifest.last ?? 0) >= caughtUp;
      });
      const backlog = (await ids(store())).filter((id) => !onCopy.includes(id));
      expect(backlog.length).toBeGreaterThanOrEqual(3);
      expect(await ids(remote)).toEqual(onCopy);

      const down = await cli(['run', 'verify']);
      expect(down.code).toBe(2);
      const downLines = down.report.lines.join('\n');
      expect(downLines).toMatch(/archive \(store\): OK/);
      expect(downLines).toMatch(/archive \(copy offsite\): CRITICAL[^\n]*\n\s+CRITICAL: cannot read the archive:/);

      // Back, with the archiver paused (SIGSTOP by PID): the copy is reachable and behind the store.
      follow.child.kill('SIGSTOP');
      paused = true;
      copySshd = await LabSshd.start(copySshd.dir, { port: copySshd.port, sftpLog: true });
      const behind = await cli(['run', 'verify']);
      const lines = behind.report.lines.join('\n');
      expect(lines).toMatch(/archive \(store\): OK/);
      expect(lines).toMatch(/archive \(copy offsite\): (WARNING|CRITICAL) - reaches \d+/);
      expect(lines).toMatch(/\n\s+(WARNING|CRITICAL): \d+ versions \(\d+ s\) behind the master/);
      expect(behind.code).toBeGreaterThanOrEqual(1);
      const status = await runCli(['status', '--config', config]);
      expect(status.stdout).toMatch(/archive \(copy offsite\)\s+archive\s+(WARNING|CRITICAL)/);

      // The sources are quiet: no seal carries the backlog; the running follower retries the copy itself.
      follow.child.kill('SIGCONT');
      paused = false;
      const all = await ids(store());
      await waitFor('the backlog on the copy', async () => (await ids(remote)).join() === all.join(), 20_000);
      // In order: each manifest (written last) renamed into place after the one before it.
      const log = await copySshd.sftpLog();
      const placed = backlog.map((id) => log.indexOf(`new "${path.join(remote, 'archive', id, 'manifest.json')}"`));
      expect(placed.every((at) => at >= 0)).toBe(true);
      expect([...placed].sort((a, b) => a - b)).toEqual(placed);

      const ok = await cli(['run', 'verify']);
      expect(ok.report.lines.join('\n')).toMatch(/archive \(copy offsite\): OK/);

      // A graceful stop with lines pending: sealed, handed to the copy, exit 0.
      writer = startWriter('last');
      await sleep(1_500);
      await writer.stop();
      await sleep(300);
    } finally {
      await writer?.stop();
      if (paused) follow.child.kill('SIGCONT');
      follow.child.kill('SIGTERM');
    }
    const stopped = await follow.done;
    expect({ code: stopped.code, out: stopped.stdout.slice(0, 300) }).toMatchObject({ code: 0 });
    expect(await ids(remote)).toEqual(await ids(store()));
    const local = (await listSegments(store(), {})).segments;
    const copied = (await listSegments(remote, {})).segments;
    expect(copied.map((s) => s.manifest)).toEqual(local.map((s) => s.manifest));
  }, 120_000);
});
