import { Lab } from '../lab/cluster.js';
import { runCli } from '../helpers/cli.js';

/**
 * The jobs together, as an operator runs them: backup writes a snapshot, verify checks that very
 * snapshot, drill restores it into a scratch master. Each job reads what another wrote — the store
 * format is the contract between them.
 */
describe('backup → verify → drill on the real snapshot store', () => {
  let lab: Lab;
  let config: string;

  beforeAll(async () => {
    lab = await Lab.start({});
    await lab.makeChanges('wf', 30);
    await lab.saveImage();
    await lab.makeChanges('wf-after-image', 10);
    config = await lab.writeConfig({ metaloggers: [], jobs: { backup: { sources: ['master'] } } });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  test("verify and drill accept what backup wrote, at the master's version", async () => {
    const master = (await lab.master.info()).metadataVersion;
    const backup = await runCli(['run', 'backup', '--config', config, '--json']);
    expect(backup.code).toBe(0);
    const snapshotVersion = JSON.parse(backup.stdout).metrics.find(
      (m: { name: string }) => m.name === 'snapshot_version',
    ).value;
    expect(snapshotVersion).toBe(master);

    const verify = await runCli(['run', 'verify', '--config', config]);
    expect(verify.stdout).toMatch(new RegExp(`^MFS VERIFY OK - .*snapshot \\S+-v${master} to ${master}`));
    expect(verify.code).toBe(0);

    const drill = await runCli(['drill', '--latest', '--config', config, '--json']);
    const report = JSON.parse(drill.stdout);
    expect(report.status).toBe('OK');
    expect(report.metrics.find((m: { name: string }) => m.name === 'restored_version').value).toBe(master);
    expect(drill.code).toBe(0);
  });
});
