import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execCapture } from '../../lib/core/exec.js';
import { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';
import { MFS_JOBS_BIN, REPO_ROOT, runCli } from '../helpers/cli.js';
import { PERFDATA_ITEM, perfItems } from './perfdata.js';

const NAGIOS = '/usr/sbin/nagios4';
const PLUGINS = '/usr/lib/nagios/plugins';
const EXAMPLE = path.join(REPO_ROOT, 'examples', 'nagios', 'mfs-jobs.cfg');

type ObjectDef = { type: string; attrs: Record<string, string> };

/** Nagios object definitions: `define TYPE { key value ... }`, comments `#` and `;`. */
function objects(text: string): ObjectDef[] {
  const defs: ObjectDef[] = [];
  for (const m of text.matchAll(/define\s+(\w+)\s*\{([^}]*)\}/g)) {
    const attrs: Record<string, string> = {};
    for (const raw of m[2]!.split('\n')) {
      const line = raw.replace(/(^|\s);.*$/, '').trim();
      if (!line || line.startsWith('#')) continue;
      const [key, ...rest] = line.split(/\s+/);
      attrs[key!] = rest.join(' ');
    }
    defs.push({ type: m[1]!, attrs });
  }
  return defs;
}

/** $USERn$ from resource.cfg lines `$USERn$=value`. */
function userMacros(resource: string): Record<string, string> {
  return Object.fromEntries([...resource.matchAll(/^\$(USER\d+)\$=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The command line Nagios runs for a check_command `name!arg1!arg2`: $ARGn$ and $USERn$ substituted. */
function commandLine(checkCommand: string, commands: Map<string, string>, users: Record<string, string>): string {
  const [name, ...args] = checkCommand.split('!');
  const line = commands.get(name!);
  if (!line) throw new Error(`check_command ${checkCommand}: no command ${name} in ${EXAMPLE}`);
  return line.replace(/\$(ARG|USER)(\d+)\$/g, (whole, kind: string, n: string) => {
    const v = kind === 'ARG' ? args[Number(n) - 1] : users[`USER${n}`];
    if (v === undefined) throw new Error(`${checkCommand}: ${whole} is not set`);
    return v;
  });
}

/**
 * examples/nagios/mfs-jobs.cfg as Debian's nagios4 reads it: `nagios4 -v` on a minimal main config that
 * includes Debian's own templates and the example, then every service's command line, macros
 * substituted, run through /bin/sh as Nagios runs it, against a real lab.
 */
describe('the Nagios object definitions', () => {
  let lab: Lab;
  let dir: string;
  let config: string;
  let resource: string;

  beforeAll(async () => {
    await fs.access(NAGIOS).catch(() => {
      throw new Error(`${NAGIOS} is missing: apt-get install nagios4-core (scripts/setup-debian.sh)`);
    });
    await fs.access(path.join(PLUGINS, 'check_file_age')).catch(() => {
      throw new Error(
        `${PLUGINS}/check_file_age is missing: apt-get install monitoring-plugins-basic (scripts/setup-debian.sh)`,
      );
    });
    lab = await Lab.start({});
    await lab.makeChanges('nagios', 10);
    await lab.saveImage();
    const standby = await LabMaster.create(path.join(lab.dir, 'standby'), { bootstrap: false });
    const standbySection = {
      dataPath: standby.dataPath,
      masterConfig: standby.configFile,
      cliHost: '127.0.0.1',
      cliPort: standby.ports.cl,
    };
    config = await lab.writeConfig({
      metaloggers: [],
      standby: standbySection,
      jobs: { backup: { sources: ['master'] }, 'check-master': { cliTimeoutSeconds: 5 } },
    });
    dir = path.join(lab.dir, 'nagios');
    await fs.mkdir(path.join(dir, 'checkresults'), { recursive: true });
    resource = [
      `$USER1$=${PLUGINS}`,
      `$USER20$=${process.execPath} ${MFS_JOBS_BIN}`,
      `$USER21$=${config}`,
      `$USER22$=${path.join(lab.dir, 'snapshots')}`,
    ].join('\n');
    await fs.writeFile(path.join(dir, 'resource.cfg'), resource + '\n');
    await fs.writeFile(
      path.join(dir, 'hosts.cfg'),
      'define command {\n    command_name host-up\n    command_line $USER1$/check_dummy 0\n}\ndefine host {\n    use linux-server\n    host_name mfs-standby\n    address 127.0.0.1\n    check_command host-up\n    hostgroups mfs-jobs-hosts\n}\n',
    );
    const main = [
      `log_file=${dir}/nagios.log`,
      ...['templates', 'timeperiods', 'contacts', 'commands'].map((f) => `cfg_file=/etc/nagios4/objects/${f}.cfg`),
      `cfg_file=${dir}/hosts.cfg`,
      `cfg_file=${EXAMPLE}`,
      `resource_file=${dir}/resource.cfg`,
      `object_cache_file=${dir}/objects.cache`,
      `precached_object_file=${dir}/objects.precache`,
      `status_file=${dir}/status.dat`,
      `temp_file=${dir}/nagios.tmp`,
      `temp_path=${dir}`,
      `lock_file=${dir}/nagios.lock`,
      `check_result_path=${dir}/checkresults`,
      `command_file=${dir}/nagios.cmd`,
      'nagios_user=root',
      'nagios_group=root',
      'illegal_macro_output_chars=`~$&|\'"<>',
    ];
    await fs.writeFile(path.join(dir, 'nagios.cfg'), main.join('\n') + '\n');
  }, 300_000);
  afterAll(async () => {
    await lab?.stop();
  });

  test('nagios4 -v accepts them: no warnings, no errors', async () => {
    const res = await execCapture(NAGIOS, ['-v', path.join(dir, 'nagios.cfg')]);
    expect(res.stdout).toMatch(/Checked 5 services\./);
    expect(res.stdout).toMatch(/Total Warnings: 0\n\s*Total Errors:\s+0/);
    expect(res.code).toBe(0);
  });

  test("each service's command, run as Nagios runs it, exits OK with perfdata by the plugin guidelines", async () => {
    const backup = await runCli(['run', 'backup', '--config', config]);
    expect(backup.code).toBe(0);
    const defs = objects(await fs.readFile(EXAMPLE, 'utf8'));
    const commands = new Map(
      defs.filter((d) => d.type === 'command').map((d) => [d.attrs.command_name!, d.attrs.command_line!]),
    );
    const services = defs.filter((d) => d.type === 'service');
    expect(services.map((s) => s.attrs.service_description)).toEqual([
      'MooseFS master',
      'MooseFS standby ready',
      'MooseFS metadata restorable',
      'MooseFS backup freshness',
      'MooseFS restore drill',
    ]);
    const users = userMacros(resource);
    const first: Record<string, string> = {};
    for (const s of services) {
      const line = commandLine(s.attrs.check_command!, commands, users);
      const res = await execCapture('/bin/sh', ['-c', line], { cwd: '/', timeoutMs: 120_000 });
      const [head = '', ...long] = res.stdout.trimEnd().split('\n');
      first[s.attrs.service_description!] = head;
      expect({ service: s.attrs.service_description, code: res.code, head }).toEqual({
        service: s.attrs.service_description,
        code: 0,
        head: expect.stringMatching(/ OK\b/),
      });
      const items = perfItems(head);
      expect(items.length).toBeGreaterThan(0);
      for (const item of items) expect(item).toMatch(PERFDATA_ITEM);
      // Nagios reads a | in the long output as more perfdata.
      expect(long.filter((l) => l.includes('|'))).toEqual([]);
    }
    const version = (await lab.master.info()).metadataVersion;
    expect(first['MooseFS master']).toMatch(
      new RegExp(
        `^MFS CHECK-MASTER OK - master serves metadata version ${version} \\| master_metadata_version=${version} masters_up=1$`,
      ),
    );
    expect(first['MooseFS standby ready']).toMatch(
      /^MFS CHECK-STANDBY OK - ready: a promotion now would restore metadata version \d+, .*\| standby_problems=0 /,
    );
    expect(first['MooseFS metadata restorable']).toMatch(
      /^MFS VERIFY OK - every source can restore: .*\| .*snapshot_age_seconds=\d+s;90000;176400/,
    );
    expect(first['MooseFS backup freshness']).toMatch(/^FILE_AGE OK: .*manifest\.json is \d+ seconds old/);
    expect(first['MooseFS restore drill']).toMatch(/^MFS DRILL OK - .*\| .*rto_seconds=[\d.]+s/);
  }, 300_000);

  test('a stopped master is CRITICAL, exit 2, through the same command line', async () => {
    const defs = objects(await fs.readFile(EXAMPLE, 'utf8'));
    const commands = new Map(
      defs.filter((d) => d.type === 'command').map((d) => [d.attrs.command_name!, d.attrs.command_line!]),
    );
    await lab.master.stop();
    try {
      const res = await execCapture(
        '/bin/sh',
        ['-c', commandLine('check_mfs_jobs!check-master', commands, userMacros(resource))],
        { cwd: '/', timeoutMs: 60_000 },
      );
      expect(res.stdout).toMatch(/^MFS CHECK-MASTER CRITICAL - no master answers/);
      expect(res.code).toBe(2);
    } finally {
      await lab.master.start();
    }
  }, 120_000);
});
