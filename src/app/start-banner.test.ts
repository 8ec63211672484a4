import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadConfig } from '../config/app-config.js';
import { startBanner } from './start-banner.js';

describe('start banner', () => {
  it('names the GraphQL and dashboard URLs, the admin key file (never the key) and the next command', () => {
    // given: a development server without ADMIN_API_KEY
    const config = loadConfig({ NODE_ENV: 'development', PORT: '0', DATA_DIR: '/srv/tp/.data' });
    // when
    const banner = startBanner(config, 'http://127.0.0.1:4123', '/srv/tp');
    // then
    assert.match(banner, /GraphQL {4}http:\/\/localhost:4123\/graphql/);
    assert.match(banner, /Dashboard {2}http:\/\/localhost:4123\/dashboard/);
    assert.match(banner, new RegExp(`Admin key  ${path.join('.data', 'admin-key').replace('.', '\\.')} `));
    assert.match(banner, /Next {7}npm run seed/);
    assert.match(banner, /embedded PostgreSQL in \.data\/pglite/);
  });

  it('says the admin key comes from the environment when ADMIN_API_KEY is set, without showing it', () => {
    const key = `tp_${'k'.repeat(32)}`;
    const config = loadConfig({
      NODE_ENV: 'development',
      ADMIN_API_KEY: key,
      DATABASE_URL: 'postgresql://x/y',
    });
    const banner = startBanner(config, 'http://127.0.0.1:4000');
    assert.match(banner, /Admin key {2}ADMIN_API_KEY \(from the environment\)/);
    assert.ok(!banner.includes(key));
    assert.match(banner, /PostgreSQL from DATABASE_URL/);
  });
});
