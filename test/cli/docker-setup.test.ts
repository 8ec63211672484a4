import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/app-config.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The Docker quick start as far as it runs without a Docker engine: the key script, and that
 * docker-compose.yml's seed service runs files the image has. `docker compose` itself is not run
 * here (no engine on these machines).
 */
describe('Docker quick start: scripts/docker-setup.sh and the compose seed service', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'themepress-docker-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  /** A checkout with only the script, so the .env it writes lands in a scratch folder. */
  async function checkout(name: string, env?: string): Promise<string> {
    const dir = path.join(work, name);
    await mkdir(path.join(dir, 'scripts'), { recursive: true });
    await copyFile(path.join(ROOT, 'scripts/docker-setup.sh'), path.join(dir, 'scripts/docker-setup.sh'));
    if (env !== undefined) await writeFile(path.join(dir, '.env'), env, { mode: 0o644 });
    return dir;
  }
  const setup = (dir: string) =>
    spawnSync('sh', [path.join(dir, 'scripts/docker-setup.sh')], { cwd: work, encoding: 'utf8' });

  it('writes a generated admin key to .env (0600) that the server accepts, shows it once, keeps it on rerun', async () => {
    // given
    const dir = await checkout('fresh');
    // when
    const first = setup(dir);
    const env = await readFile(path.join(dir, '.env'), 'utf8');
    const second = setup(dir);
    // then
    assert.equal(first.status, 0, first.stderr);
    const key = /^ADMIN_API_KEY=(tp_[A-Za-z0-9_-]{32})$/m.exec(env)![1];
    assert.equal(loadConfig({ ADMIN_API_KEY: key }).adminApiKey, key);
    assert.equal(first.stdout.split(key).length - 1, 1, 'shown exactly once');
    assert.match(first.stdout, /docker compose up --build -d.*\n {2}docker compose run --rm seed/);
    assert.equal((await stat(path.join(dir, '.env'))).mode & 0o777, 0o600);
    assert.equal(second.status, 0);
    assert.ok(!second.stdout.includes(key), 'not shown again');
    assert.match(second.stdout, /already holds ADMIN_API_KEY/);
    assert.equal(await readFile(path.join(dir, '.env'), 'utf8'), env);
  });

  it('keeps the other settings of an existing .env, replaces an empty ADMIN_API_KEY, and makes the file 0600', async () => {
    // given: a .env copied from .env.example and edited
    const dir = await checkout('existing', 'PORT=4000\n# ADMIN_API_KEY=\nADMIN_API_KEY=\nLOG_LEVEL=debug\n');
    // when
    const result = setup(dir);
    // then
    assert.equal(result.status, 0, result.stderr);
    const env = await readFile(path.join(dir, '.env'), 'utf8');
    assert.match(env, /^PORT=4000\n# ADMIN_API_KEY=\nLOG_LEVEL=debug\nADMIN_API_KEY=tp_[A-Za-z0-9_-]{32}\n$/);
    assert.equal((await stat(path.join(dir, '.env'))).mode & 0o777, 0o600);
  });

  it("has a seed service running the seed the image ships, on the server's network, with the .env key", async () => {
    // given
    const compose = await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
    const seed = compose.slice(compose.indexOf('\n  seed:'), compose.indexOf('\nvolumes:'));
    // then
    assert.match(seed, /network_mode: 'service:server'/);
    assert.match(seed, /THEMEPRESS_API_KEY: \$\{ADMIN_API_KEY:\?/);
    assert.match(seed, /- \.\/addons-examples:\/app\/addons-examples:ro/);
    const command = /command: \['node', '(dist\/src\/seed\/seed-cli\.js)'\]/.exec(seed);
    assert.ok(command, seed);
    await stat(path.join(ROOT, command[1]));
    assert.match(dockerfile, /COPY --from=build .* \/app\/dist\/src \.\/dist\/src/);
    assert.match(compose, /\n {2}server:\n {4}build: \.\n {4}image: themepress-server:local\n/);
    assert.match(seed, /image: themepress-server:local/);
  });
});
